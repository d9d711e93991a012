"""Import-report counts as a table: one row per class, one column per split, plus totals."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QFont

from workbench.core.data import GOOD, ImportReport

Index = QModelIndex | QPersistentModelIndex
SPLIT_ORDER = ("train", "val", "test")
TOTAL = "Total"


class ReportCountsModel(QAbstractTableModel):
    """Rows: ``good`` then each defect type, then Total; columns: the splits present, then Total."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.splits: list[str] = []
        self.labels: list[str] = []
        self.counts: dict[tuple[str, str], int] = {}

    def set_report(self, report: ImportReport | None) -> None:
        self.beginResetModel()
        self.counts = dict(report.counts) if report else {}
        splits = {s for s, _ in self.counts}
        self.splits = [s for s in SPLIT_ORDER if s in splits] + sorted(splits - set(SPLIT_ORDER))
        labels = {lab for _, lab in self.counts}
        self.labels = ([GOOD] if GOOD in labels else []) + sorted(labels - {GOOD})
        self.endResetModel()

    def count(self, label: str, split: str) -> int:
        if label == TOTAL and split == TOTAL:
            return sum(self.counts.values())
        if label == TOTAL:
            return sum(n for (s, _), n in self.counts.items() if s == split)
        if split == TOTAL:
            return sum(n for (_, lab), n in self.counts.items() if lab == label)
        return self.counts.get((split, label), 0)

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() or not self.labels else len(self.labels) + 1

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() or not self.splits else len(self.splits) + 1

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return (self.splits + [TOTAL])[section]
        return (self.labels + [TOTAL])[section]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        label = (self.labels + [TOTAL])[index.row()]
        split = (self.splits + [TOTAL])[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            n = self.count(label, split)
            return str(n) if n else "–"
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and TOTAL in (label, split):
            font = QFont()
            font.setBold(True)
            return font
        return None
