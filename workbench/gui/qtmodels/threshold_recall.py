"""Recall per defect type at the current image threshold: which classes escape.

One row per defect type of the test split (plus a last row for the good images, which shows
the false alarms). The scores of each type are sorted once, so moving the threshold costs one
``np.searchsorted`` per row and repaints only the "caught" and "recall" columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QFont

from workbench.core.data import ImageRecord
from workbench.gui.qtmodels.roles import SortRole
from workbench.gui.qtmodels.threshold_data import ScoreIndex

Index = QModelIndex | QPersistentModelIndex

COLUMNS = ("Defect type", "n", "Caught", "Recall")
TIPS = ("Label of the test images (folder name)",
        "Test images of this type",
        "Images of this type scoring at or above the threshold (flagged NG)",
        "Caught / n. Red: some images of this type escape at this threshold. "
        "For the good row: the false-alarm rate (FA).")
ESCAPE_COLOR = QColor("#b91c1c")
GOOD_ROW = "good"  # last row: good images flagged NG are false alarms


@dataclass
class _Row:
    label: str
    scores: np.ndarray  # ascending
    names: list[str]  # file names in the same order as scores
    caught: int = 0

    @property
    def n(self) -> int:
        return int(self.scores.size)

    @property
    def is_good(self) -> bool:
        return self.label == GOOD_ROW


class DefectRecallModel(QAbstractTableModel):
    """Rows: defect types (alphabetical), then the good images. Call :meth:`set_threshold`."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[_Row] = []
        self.threshold: float | None = None

    def set_records(self, records: list[ImageRecord], scores: np.ndarray) -> None:
        scores = np.asarray(scores, np.float64)
        groups: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            groups.setdefault(GOOD_ROW if record.is_good else record.label, []).append(i)
        order = sorted(k for k in groups if k != GOOD_ROW) + ([GOOD_ROW] if GOOD_ROW in groups else [])
        self.beginResetModel()
        self.rows = []
        for label in order:
            idx = np.array(groups[label])
            sort = np.argsort(scores[idx], kind="stable")
            self.rows.append(_Row(label, scores[idx][sort], [records[i].path.name for i in idx[sort]]))
        self.endResetModel()
        if self.threshold is not None:
            self.set_threshold(self.threshold)

    def clear(self) -> None:
        self.beginResetModel()
        self.rows = []
        self.endResetModel()

    def set_threshold(self, threshold: float) -> None:
        self.threshold = float(threshold)
        changed = False
        for row in self.rows:
            caught = ScoreIndex.count_at_or_above(row.scores, self.threshold)
            changed |= caught != row.caught
            row.caught = caught
        if changed and self.rows:
            self.dataChanged.emit(self.index(0, 2), self.index(len(self.rows) - 1, 3))

    def recall_of(self, label: str) -> float | None:
        row = next((r for r in self.rows if r.label == label), None)
        return row.caught / row.n if row and row.n else None

    def escaped(self, row: int) -> list[tuple[str, float]]:
        """(file name, score) of the images of ``row`` below the threshold, worst first."""
        r = self.rows[row]
        below = r.n - r.caught
        return [(r.names[i], float(r.scores[i])) for i in range(below - 1, -1, -1)]

    # ------------------------------------------------------------------ Qt API
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return TIPS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        row, col = self.rows[index.row()], index.column()
        rate = row.caught / row.n if row.n else 0.0
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return row.label
            if col == 1:
                return str(row.n)
            if col == 2:
                return str(row.caught)
            return f"{rate:.1%}" if not row.is_good else f"FA {rate:.1%}"
        if role == SortRole:
            return (row.label, row.n, row.caught, rate)[col]
        if role == Qt.ItemDataRole.TextAlignmentRole and col > 0:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole:
            if row.is_good:
                return QColor("#4b5563") if row.caught == 0 else ESCAPE_COLOR if col == 3 else None
            if row.caught < row.n and col in (0, 3):
                return ESCAPE_COLOR
        if role == Qt.ItemDataRole.FontRole and col == 3 and not row.is_good and row.caught < row.n:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            if row.is_good:
                flagged = [(row.names[i], float(row.scores[i])) for i in range(row.n - 1, row.n - row.caught - 1, -1)]
                if not flagged:
                    return "No good image is flagged at this threshold."
                return "Flagged good images (false alarms):\n" + "\n".join(f"{n}  {s:.4g}" for n, s in flagged[:15])
            escaped = self.escaped(index.row())
            if not escaped:
                return f"Every {row.label} image is caught."
            more = f"\n… and {len(escaped) - 15} more" if len(escaped) > 15 else ""
            return (f"Escaping {row.label} images (score below the threshold):\n"
                    + "\n".join(f"{n}  {s:.4g}" for n, s in escaped[:15]) + more)
        return None
