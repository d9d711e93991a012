"""The review list: one row per image of the dataset with its score, the model's decision,
the folder's label and the engineer's review; a proxy filters and sorts it.

Rows are plain data (:class:`ReviewItem`); labels and the set of images with a drawn mask
are held here so filtering 5,000 rows never touches the database or the disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QFont

from workbench.core.calibration.policy import InspectionPolicy
from workbench.core.data import ImageRecord
from workbench.gui.qtmodels.roles import ObjectRole, SortRole

Index = QModelIndex | QPersistentModelIndex

COL_IMAGE, COL_SPLIT, COL_FOLDER, COL_REVIEW, COL_SCORE, COL_MODEL, COL_MARGIN = range(7)
HEADERS = ("Image", "Split", "Folder", "Review", "Score", "Model", "|Δ thr|")
TIPS = ("Image file (class folder / name)", "Dataset split", "Label from the dataset's folders",
        "Your verdict and defect class (empty: not reviewed)", "Anomaly score of the active model",
        "The model's decision at its image threshold", "Distance of the score from the threshold: "
        "small = hard case")
NG_COLOR, OK_COLOR, REVIEW_COLOR = QColor("#b3261e"), QColor("#1e7a3c"), QColor("#b26a00")

# Filter values for the verdict filter
ANY, REVIEWED, UNREVIEWED, VERDICT_OK, VERDICT_NG = None, "reviewed", "unreviewed", "OK", "NG"


@dataclass
class ReviewItem:
    record: ImageRecord
    key: str  # workspace label key
    pred_index: int | None = None  # row in the EvalResult (test split), None: not predicted
    score: float | None = None


class ReviewTableModel(QAbstractTableModel):
    """Images with scores, decisions and reviewed labels (columns: see :data:`HEADERS`)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.items: list[ReviewItem] = []
        self.labels: dict[str, dict[str, Any]] = {}
        self.masks: set[str] = set()  # keys with a reviewed mask file
        self.policy: InspectionPolicy | None = None  # the decision rule shown (may be unsaved)
        self._rows: dict[str, int] = {}

    # ------------------------------------------------------------------ content
    def set_items(self, items: list[ReviewItem], labels: dict[str, dict[str, Any]], masks: set[str]) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.labels = dict(labels)
        self.masks = set(masks)
        self._rows = {it.key: i for i, it in enumerate(self.items)}
        self.endResetModel()

    def set_scores(self, scores: dict[str, tuple[int, float]],
                   policy: InspectionPolicy | float | None) -> None:
        """``scores``: key -> (index in the predictions, score after the policy's ROI/ignore);
        other rows lose theirs. ``policy`` decides (a bare number: an NG threshold)."""
        self.beginResetModel()
        for it in self.items:
            it.pred_index, it.score = scores.get(it.key, (None, None))
        self.policy = _as_policy(policy)
        self.endResetModel()

    def set_threshold(self, threshold: float | None) -> None:
        self.set_policy(_as_policy(threshold))

    def set_policy(self, policy: InspectionPolicy | None) -> None:
        self.policy = policy
        self._changed_all()

    @property
    def threshold(self) -> float | None:
        return None if self.policy is None else self.policy.ng_threshold

    def row_of(self, key: str) -> int:
        return self._rows.get(key, -1)

    def item(self, row: int) -> ReviewItem:
        return self.items[row]

    def label(self, key: str) -> dict[str, Any] | None:
        return self.labels.get(key)

    def set_label(self, key: str, label: dict[str, Any] | None) -> None:
        if label and (label.get("verdict") or label.get("defect_class") or label.get("note")):
            self.labels[key] = dict(label)
        else:
            self.labels.pop(key, None)
        self._changed_row(key)

    def set_has_mask(self, key: str, has: bool) -> None:
        (self.masks.add if has else self.masks.discard)(key)
        self._changed_row(key)

    def _changed_row(self, key: str) -> None:
        row = self.row_of(key)
        if row >= 0:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(HEADERS) - 1))

    def _changed_all(self) -> None:
        if self.items:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.items) - 1, len(HEADERS) - 1))

    # ------------------------------------------------------------------ derived values
    def model_decision(self, it: ReviewItem) -> str | None:
        """OK / REVIEW / NG / error at the shown policy, or None (no score or no threshold)."""
        if it.score is None or self.policy is None or self.policy.ng_threshold is None:
            return None
        return self.policy.verdict(it.score)

    def model_ng(self, it: ReviewItem) -> bool | None:
        """True for NG (and error), False for OK, None for REVIEW or no decision."""
        decision = self.model_decision(it)
        if decision is None or decision == "REVIEW":
            return None
        return decision != "OK"

    def verdict(self, it: ReviewItem) -> str | None:
        label = self.labels.get(it.key)
        return label.get("verdict") if label else None

    def truth_ng(self, it: ReviewItem) -> bool:
        """Reviewed verdict if any, else the folder's."""
        verdict = self.verdict(it)
        return verdict == "NG" if verdict else it.record.is_anomalous

    def truth_class(self, it: ReviewItem) -> str:
        label = self.labels.get(it.key) or {}
        if label.get("verdict") == "OK":
            return "good"
        if label.get("defect_class") and (label.get("verdict") == "NG" or it.record.is_anomalous):
            return label["defect_class"]
        if label.get("verdict") == "NG" and it.record.is_good:
            return "defect"
        return it.record.label

    def disagrees(self, it: ReviewItem) -> bool:
        ng = self.model_ng(it)
        return ng is not None and ng != self.truth_ng(it)

    def margin(self, it: ReviewItem) -> float | None:
        if it.score is None or self.policy is None or self.policy.ng_threshold is None:
            return None
        return self.policy.margin(it.score)

    def is_reviewed(self, it: ReviewItem) -> bool:
        return it.key in self.labels or it.key in self.masks

    def counts(self) -> dict[str, int]:
        reviewed = sum(self.is_reviewed(it) for it in self.items)
        changed = sum(1 for it in self.items if self.verdict(it) and self.truth_ng(it) != it.record.is_anomalous)
        return {"total": len(self.items), "reviewed": reviewed, "original": len(self.items) - reviewed,
                "changed": changed, "masks": sum(1 for it in self.items if it.key in self.masks)}

    def review_text(self, it: ReviewItem) -> str:
        label = self.labels.get(it.key) or {}
        verdict, cls = label.get("verdict"), label.get("defect_class")
        parts = [verdict] if verdict else []
        if cls and verdict != "OK":
            parts.append(cls)
        text = " · ".join(parts)
        if it.key in self.masks:
            text += " ✎" if text else "mask ✎"
        if label.get("note"):
            text += " ✉" if text else "note ✉"
        return text

    # ------------------------------------------------------------------ Qt API
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return TIPS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.items):
            return None
        it = self.items[index.row()]
        col = index.column()
        if role == ObjectRole:
            return it
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(it, col)
        if role == SortRole:
            return self._sort_value(it, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            label = self.labels.get(it.key) or {}
            tip = f"{it.record.path}\n{it.record.split} / folder: {it.record.label}"
            if label.get("note"):
                tip += f"\nnote: {label['note']}"
            return tip
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == COL_MODEL:
                decision = self.model_decision(it)
                if decision == "REVIEW":
                    return REVIEW_COLOR
                return None if decision is None else (OK_COLOR if decision == "OK" else NG_COLOR)
            if col == COL_REVIEW:
                v = self.verdict(it)
                return None if v is None else (NG_COLOR if v == "NG" else OK_COLOR)
            if col == COL_FOLDER and it.record.is_anomalous:
                return NG_COLOR
        if role == Qt.ItemDataRole.FontRole and col == COL_MODEL and self.disagrees(it):
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (COL_SCORE, COL_MARGIN):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _display(self, it: ReviewItem, col: int) -> str:
        if col == COL_IMAGE:
            return f"{it.record.label}/{it.record.path.name}"
        if col == COL_SPLIT:
            return it.record.split
        if col == COL_FOLDER:
            return it.record.label
        if col == COL_REVIEW:
            return self.review_text(it)
        if col == COL_SCORE:
            return "" if it.score is None else f"{it.score:.4g}"
        if col == COL_MODEL:
            text = self.model_decision(it) or ""
            return text + (" ≠" if self.disagrees(it) else "")
        if col == COL_MARGIN:
            m = self.margin(it)
            return "" if m is None else f"{m:.3g}"
        return ""

    def _sort_value(self, it: ReviewItem, col: int) -> Any:
        if col == COL_SCORE:
            return -math.inf if it.score is None else float(it.score)
        if col == COL_MARGIN:
            m = self.margin(it)
            return math.inf if m is None else float(m)
        if col == COL_MODEL:
            order = {None: -1, "OK": 0, "REVIEW": 1, "NG": 2, "error": 2}[self.model_decision(it)]
            return order + (3 if self.disagrees(it) else 0)
        return self._display(it, col).lower()


class ReviewFilterProxy(QSortFilterProxyModel):
    """Filters by split, verdict, class, score range and "disagrees with the model".

    Not dynamic: a row whose label changes stays where it is until the filter or the sort
    changes, so labelling from a "not reviewed" queue does not make rows jump under the user.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SortRole)
        self.setDynamicSortFilter(False)
        self.split: str | None = None
        self.verdict: str | None = ANY
        self.label: str | None = None  # effective class ("good", a defect class) or None
        self.disagree_only = False
        self.scored_only = False
        self.score_min: float | None = None
        self.score_max: float | None = None

    def set_filter(self, **values: Any) -> None:
        """Any of split, verdict, label, disagree_only, scored_only, score_min, score_max."""
        unknown = set(values) - {"split", "verdict", "label", "disagree_only", "scored_only", "score_min", "score_max"}
        if unknown:
            raise TypeError(f"unknown filter(s): {', '.join(sorted(unknown))}")
        self.beginFilterChange()
        for name, value in values.items():
            setattr(self, name, value)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        # Not dynamic: rows the filter lets back in are appended at the end; sort again so the
        # list stays in the order its header shows.
        if self.sortColumn() >= 0:
            self.sort(self.sortColumn(), self.sortOrder())

    def refresh(self) -> None:
        """Apply the filter and sort again (after labels changed)."""
        self.beginFilterChange()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        if self.sortColumn() >= 0:
            self.sort(self.sortColumn(), self.sortOrder())

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        if not isinstance(model, ReviewTableModel):
            return True
        it = model.items[source_row]
        if self.split is not None and it.record.split != self.split:
            return False
        if self.verdict is not ANY:
            v = model.verdict(it)
            if self.verdict == REVIEWED and not model.is_reviewed(it):
                return False
            if self.verdict == UNREVIEWED and model.is_reviewed(it):
                return False
            if self.verdict in (VERDICT_OK, VERDICT_NG) and v != self.verdict:
                return False
        if self.label is not None and model.truth_class(it) != self.label:
            return False
        if self.scored_only and it.score is None:
            return False
        if self.score_min is not None and (it.score is None or it.score < self.score_min):
            return False
        if self.score_max is not None and (it.score is None or it.score > self.score_max):
            return False
        if self.disagree_only and not model.disagrees(it):
            return False
        return True


def _as_policy(policy: InspectionPolicy | float | None) -> InspectionPolicy | None:
    if policy is None or isinstance(policy, InspectionPolicy):
        return policy
    return InspectionPolicy(ng_threshold=float(policy))
