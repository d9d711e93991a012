"""A path field with a Browse… button (a folder, or a file to save)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget


class PathPicker(QWidget):
    """``mode``: "folder" (an output folder) or "save" (a file, ``filter`` like "HTML (*.html)")."""

    changed = Signal(str)

    def __init__(self, mode: str, caption: str, file_filter: str = "", placeholder: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode, self.caption, self.file_filter = mode, caption, file_filter
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.textChanged.connect(self.changed)
        self.button = QPushButton("Browse…")
        self.button.clicked.connect(self.browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.button)

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text).expanduser() if text else None

    def set_path(self, path: str | Path | None) -> None:
        self.edit.setText("" if path is None else str(path))

    def browse(self) -> None:
        start = self.edit.text() or str(Path.home())
        if self.mode == "folder":
            chosen = QFileDialog.getExistingDirectory(self, self.caption, start)
        else:
            chosen, _ = QFileDialog.getSaveFileName(self, self.caption, start, self.file_filter)
        if chosen:
            self.set_path(chosen)
