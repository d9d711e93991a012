"""The "Import a dataset" bar: folder, layout (auto-detected, overridable) and category.

Kept apart from the dataset panel because it only gathers the user's choice; the panel
runs the import. Detection reads directory listings only, so it runs in the GUI thread.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QStyle,
    QVBoxLayout, QWidget,
)

from workbench.core.data import DatasetError, detect_layout, list_categories

LAYOUT_CHOICES = (("Auto-detect", "auto"), ("MVTec AD", "mvtec"), ("VisA", "visa"), ("Plain folders", "folder"))
ALL_CATEGORIES = "__all__"


class ImportBox(QGroupBox):
    """Emits ``importRequested(root, layout, categories)``; ``categories`` None = all of them."""

    importRequested = Signal(str, str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Import a dataset", parent)
        icon = self.style().standardIcon
        self.root_edit = QLineEdit()
        self.root_edit.setPlaceholderText("Folder with your images (MVTec, VisA or good/ + defect folders)")
        self.root_edit.editingFinished.connect(lambda: self.inspect_root(self.root_edit.text()))
        browse = QPushButton(icon(QStyle.StandardPixmap.SP_DirOpenIcon), "Browse…")
        browse.clicked.connect(self.choose_folder)
        self.layout_combo = QComboBox()
        for text, value in LAYOUT_CHOICES:
            self.layout_combo.addItem(text, value)
        self.layout_combo.setToolTip("How the folder is organised; auto-detect is right for standard layouts.")
        self.layout_combo.currentIndexChanged.connect(lambda _i: self.inspect_root(self.root_edit.text()))
        self.category_combo = QComboBox()
        self.category_combo.setMinimumContentsLength(16)
        self.category_combo.setToolTip("Product category inside a multi-category dataset")
        self.detected = QLabel("")
        self.detected.setObjectName("hint")
        self.import_button = QPushButton(icon(QStyle.StandardPixmap.SP_DialogOpenButton), "Import")
        self.import_button.setObjectName("primary")
        self.import_button.setToolTip("Import the folder into the workspace (Ctrl+I to choose a folder)")
        self.import_button.clicked.connect(self._import_clicked)

        row = QHBoxLayout()
        row.addWidget(QLabel("Folder"))
        row.addWidget(self.root_edit, 1)
        row.addWidget(browse)
        row.addSpacing(12)
        row.addWidget(QLabel("Layout"))
        row.addWidget(self.layout_combo)
        row.addWidget(QLabel("Category"))
        row.addWidget(self.category_combo)
        row.addWidget(self.import_button)
        outer = QVBoxLayout(self)
        outer.addLayout(row)
        outer.addWidget(self.detected)

    def choose_folder(self) -> None:
        start = self.root_edit.text() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Choose the dataset folder", start)
        if folder:
            self.root_edit.setText(folder)
            self.inspect_root(folder)

    def inspect_root(self, root: str) -> None:
        """Detect the layout and list the categories, so the user sees what will be imported."""
        self.category_combo.clear()
        root = root.strip()
        if not root:
            self.detected.setText("")
            return
        try:
            found = detect_layout(root)
            categories = list_categories(root, self.layout_combo.currentData())
        except DatasetError as exc:
            self.detected.setText(str(exc).splitlines()[0])
            self.category_combo.setEnabled(False)
            return
        if categories:
            self.category_combo.addItem(f"All categories ({len(categories)})", ALL_CATEGORIES)
            for name in categories:
                self.category_combo.addItem(name, name)
        else:
            self.category_combo.addItem("(single dataset)", None)
        self.category_combo.setEnabled(bool(categories))
        cats = f", {len(categories)} categories: {', '.join(categories)}" if categories else ""
        self.detected.setText(f"Detected layout: {found}{cats}")

    def set_busy(self, busy: bool, enabled: bool = True) -> None:
        self.import_button.setEnabled(enabled and not busy)
        self.import_button.setText("Importing…" if busy else "Import")

    def _import_clicked(self) -> None:
        root = self.root_edit.text().strip()
        if not root:
            self.choose_folder()
            return
        choice = self.category_combo.currentData()
        categories = None if choice in (None, ALL_CATEGORIES) else [choice]
        self.importRequested.emit(root, self.layout_combo.currentData(), categories)
