"""The Sweep dialog: which methods, which of the workspace's categories, which parameter values."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QListWidget, QListWidgetItem,
                               QPlainTextEdit, QSpinBox, QVBoxLayout, QWidget)

from workbench.core.cluster.sweep import parse_grid
from workbench.core.methods import METHODS
from workbench.core.workspace import DatasetEntry


class SweepDialog(QDialog):
    """Choices for a sweep over ``entries`` (datasets of one root folder, one per category)."""

    def __init__(self, entries: list[DatasetEntry], current: DatasetEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sweep methods and parameters")
        self.methods = QListWidget()
        for cls in METHODS.values():
            item = QListWidgetItem(f"{cls.title} ({cls.name})")
            item.setData(Qt.ItemDataRole.UserRole, cls.name)
            item.setCheckState(Qt.CheckState.Checked if cls.name in ("patchcore", "padim") else Qt.CheckState.Unchecked)
            self.methods.addItem(item)
        self.datasets = QListWidget()
        for entry in entries:
            item = QListWidgetItem(entry.name)
            item.setData(Qt.ItemDataRole.UserRole, entry)
            item.setCheckState(Qt.CheckState.Checked if entry.id == current.id else Qt.CheckState.Unchecked)
            self.datasets.addItem(item)
        self.params = QPlainTextEdit()
        self.params.setPlaceholderText("one per line, e.g.\nimage_size=224,256\ncoreset_ratio=0.01,0.1")
        self.params.setMaximumHeight(80)
        self.workers = QSpinBox()
        self.workers.setRange(1, max(1, os.cpu_count() or 1))
        self.workers.setValue(max(1, os.cpu_count() or 1))
        self.workers.setToolTip("Combinations trained at the same time, one CPU core each")
        form = QFormLayout()
        form.addRow("Methods", self.methods)
        form.addRow("Datasets", self.datasets)
        form.addRow("Parameter values", self.params)
        form.addRow("Worker processes", self.workers)
        self.error = QLabel("")
        self.error.setObjectName("hint")
        self.error.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start sweep")
        buttons.accepted.connect(self._accept_if_valid)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Every combination is trained and evaluated in its own worker process; each "
                                "finished one appears in the model table."))
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def chosen_methods(self) -> list[str]:
        return [self.methods.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.methods.count())
                if self.methods.item(i).checkState() == Qt.CheckState.Checked]

    def chosen_datasets(self) -> list[DatasetEntry]:
        return [self.datasets.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.datasets.count())
                if self.datasets.item(i).checkState() == Qt.CheckState.Checked]

    def grid(self) -> dict[str, list[str]]:
        """Raises ValueError naming the line when a line is not NAME=V1,V2."""
        lines = [line.strip() for line in self.params.toPlainText().splitlines() if line.strip()]
        return parse_grid(lines)

    def _accept_if_valid(self) -> None:
        try:
            self.grid()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        if not self.chosen_methods() or not self.chosen_datasets():
            self.error.setText("Choose at least one method and one dataset.")
            return
        self.accept()
