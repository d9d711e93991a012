"""The workspace's datasets, for the dataset switcher."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from workbench.core.workspace import DatasetEntry
from workbench.gui.qtmodels.roles import ObjectRole

Index = QModelIndex | QPersistentModelIndex


class DatasetListModel(QAbstractListModel):
    """One row per :class:`DatasetEntry`; a dataset whose folder vanished is shown greyed."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.entries: list[DatasetEntry] = []

    def set_entries(self, entries: list[DatasetEntry]) -> None:
        self.beginResetModel()
        self.entries = list(entries)
        self.endResetModel()

    def row_of(self, dataset_id: int) -> int:
        return next((i for i, e in enumerate(self.entries) if e.id == dataset_id), -1)

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.entries)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.entries):
            return None
        entry = self.entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return entry.name
        if role == Qt.ItemDataRole.ToolTipRole:
            where = f"{entry.root}" + (f"  (category {entry.category})" if entry.category else "")
            missing = "" if entry.exists else "\nThe folder is missing: reconnect the drive or re-import."
            return f"{where}\nlayout: {entry.layout}, added {entry.added_at}{missing}"
        if role == Qt.ItemDataRole.ForegroundRole and not entry.exists:
            return QColor("#9aa0a6")
        if role == ObjectRole:
            return entry
        return None
