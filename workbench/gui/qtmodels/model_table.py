"""Trained models side by side: method, name, accuracy metrics and speed.

The best value of each metric column is bold so the engineer sees at a glance which model
wins; numeric columns sort by their raw value (``SortRole``), missing metrics sort last.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QFont

from workbench.core.methods import METHODS
from workbench.core.workspace import ModelEntry
from workbench.gui.qtmodels.roles import ObjectRole, SortRole

Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class Column:
    title: str
    value: Callable[[ModelEntry], Any]
    fmt: str = ""  # format spec for numbers; "" = text
    higher_is_better: bool | None = None  # None: not a ranking column
    tip: str = ""


def _metric(key: str) -> Callable[[ModelEntry], Any]:
    return lambda e: e.metrics.get(key)


def _method_title(entry: ModelEntry) -> str:
    cls = METHODS.get(entry.method)
    return cls.title if cls else entry.method


def _created(entry: ModelEntry) -> str:
    try:
        return _dt.datetime.fromisoformat(entry.created_at).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return entry.created_at


COLUMNS: tuple[Column, ...] = (
    Column("Method", _method_title),
    Column("Name", lambda e: e.name),
    Column("Image AUROC", _metric("image_auroc"), ".3f", True,
           "Area under the ROC curve of image scores on the test split (1 = perfect separation)."),
    Column("Pixel AUROC", _metric("pixel_auroc"), ".3f", True,
           "ROC area over all pixels at ground-truth resolution."),
    Column("AUPRO", _metric("aupro"), ".3f", True,
           "Per-region overlap up to 30% false-positive rate: rewards finding small defects too."),
    Column("Fit s", lambda e: e.fit_seconds, ".1f", False, "Training time in seconds."),
    Column("ms/img", _metric("ms_per_image"), ".1f", False, "Inference time per test image."),
    Column("Created", _created),
)


class ModelTableModel(QAbstractTableModel):
    """One row per :class:`ModelEntry` of the current dataset."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.entries: list[ModelEntry] = []
        self.active_id: int | None = None
        self._best: dict[int, Any] = {}

    def set_entries(self, entries: list[ModelEntry]) -> None:
        self.beginResetModel()
        self.entries = list(entries)
        self._best = self._compute_best()
        self.endResetModel()

    def set_active(self, model_id: int | None) -> None:
        self.active_id = model_id
        if self.entries:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.entries) - 1, len(COLUMNS) - 1))

    def row_of(self, model_id: int) -> int:
        return next((i for i, e in enumerate(self.entries) if e.id == model_id), -1)

    def _compute_best(self) -> dict[int, Any]:
        best: dict[int, Any] = {}
        for col, spec in enumerate(COLUMNS):
            if spec.higher_is_better is None or len(self.entries) < 2:
                continue
            values = [v for v in (spec.value(e) for e in self.entries) if isinstance(v, (int, float))]
            if values:
                best[col] = max(values) if spec.higher_is_better else min(values)
        return best

    # ------------------------------------------------------------------ Qt API
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section].title
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section].tip or None
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.entries):
            return None
        entry, col = self.entries[index.row()], index.column()
        spec = COLUMNS[col]
        value = spec.value(entry)
        if role == Qt.ItemDataRole.DisplayRole:
            if value is None:
                return "–"
            return format(value, spec.fmt) if spec.fmt else str(value)
        if role == SortRole:
            return value if value is not None else (float("-inf") if spec.higher_is_better else float("inf"))
        if role == Qt.ItemDataRole.TextAlignmentRole and spec.fmt:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole:
            bold = (col in self._best and value == self._best[col]) or (col == 1 and entry.id == self.active_id)
            if bold:
                font = QFont()
                font.setBold(True)
                return font
        if role == Qt.ItemDataRole.ForegroundRole and not entry.exists:
            return QColor("#9aa0a6")
        if role == Qt.ItemDataRole.ToolTipRole:
            head = f"{entry.path}" + ("" if entry.exists else "\n(model folder is missing)")
            from workbench.gui.widgets.run_record_dialog import record_tooltip

            record = record_tooltip(entry.path) if entry.exists else ""
            return f"{head}\nparameters: {json.dumps(entry.params, sort_keys=True)}" + (f"\n{record}" if record else "")
        if role == ObjectRole:
            return entry
        return None
