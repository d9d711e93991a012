"""The method registry as a list model, so adding a method to the core adds it to the GUI."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from workbench.core.methods import METHODS, AnomalyModel
from workbench.gui.qtmodels.roles import ObjectRole

Index = QModelIndex | QPersistentModelIndex


class MethodListModel(QAbstractListModel):
    """One row per registered method: "Title (family)", the description as tooltip."""

    def __init__(self, methods: dict[str, type[AnomalyModel]] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.methods = list((methods or METHODS).values())

    def row_of(self, name: str) -> int:
        return next((i for i, m in enumerate(self.methods) if m.name == name), -1)

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.methods)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.methods):
            return None
        cls = self.methods[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{cls.title}\n{cls.family}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return cls.description
        if role == ObjectRole:
            return cls
        return None
