"""A model's run records (:mod:`workbench.core.run_record`): a summary per record and the full JSON."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QListWidget, QPlainTextEdit, QSplitter, QVBoxLayout, QWidget

from workbench.core.run_record import load_records, summary


def record_tooltip(model_dir: str | Path) -> str:
    """The newest training record's summary, for the model table's tooltip ('' when none)."""
    try:
        records = [r for r in load_records(model_dir) if r["kind"] in ("train", "update")]
    except (OSError, ValueError):
        return ""
    return f"Run record:\n{summary(records[-1])}" if records else ""


class RunRecordDialog(QDialog):
    """Every record of one model, oldest first; selecting one shows its JSON."""

    def __init__(self, model_dir: str | Path, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Run records — {title}")
        self.resize(760, 520)
        self.records = load_records(model_dir)
        self.list = QListWidget()
        self.list.setObjectName("runRecordList")
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setObjectName("runRecordJson")
        for record in self.records:
            self.list.addItem(summary(record).splitlines()[0])
        self.list.currentRowChanged.connect(self._show)
        split = QSplitter()
        split.addWidget(self.list)
        split.addWidget(self.text)
        split.setSizes([260, 500])
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(split, 1)
        layout.addWidget(buttons)
        if self.records:
            self.list.setCurrentRow(len(self.records) - 1)
        else:
            self.text.setPlainText("This model has no run records (it was saved before the workbench wrote them).")

    def _show(self, row: int) -> None:
        if 0 <= row < len(self.records):
            record = self.records[row]
            self.text.setPlainText(summary(record) + "\n\n" + json.dumps(record, indent=2))
