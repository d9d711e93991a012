"""Image-level metrics: one anomaly score and one good/defective label per image.

Convention everywhere: label 1 (True) = defective = positive class, and an image is
predicted defective when ``score >= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn import metrics as skm

from ._ranking import best_f1


@dataclass(frozen=True)
class Curve:
    """A threshold curve ready for plotting: point ``i`` is ``(x[i], y[i])`` at ``thresholds[i]``.

    Thresholds are in descending order; a point with threshold ``+inf`` is the "nothing
    flagged" end of the curve.
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    thresholds: NDArray[np.float64]


@dataclass(frozen=True)
class Confusion:
    """Counts at one threshold, plus the rates a quality engineer reads off them.

    Every rate whose denominator is zero is reported as 0.0 (never NaN), so tables and
    plots need no special casing; check the counts when that distinction matters.
    """

    tp: int
    fp: int
    tn: int
    fn: int

    @staticmethod
    def _ratio(numerator: int, denominator: int) -> float:
        return numerator / denominator if denominator else 0.0

    @property
    def precision(self) -> float:
        """Share of flagged images that really are defective."""
        return self._ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """Share of defective images that get flagged (1 - escape rate)."""
        return self._ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        return self._ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def false_alarm_rate(self) -> float:
        """Share of good images wrongly flagged: fp / (fp + tn)."""
        return self._ratio(self.fp, self.fp + self.tn)

    @property
    def escape_rate(self) -> float:
        """Share of defective images that slip through: fn / (fn + tp)."""
        return self._ratio(self.fn, self.fn + self.tp)

    @property
    def accuracy(self) -> float:
        """Share of all images classified correctly."""
        return self._ratio(self.tp + self.tn, self.tp + self.fp + self.tn + self.fn)


def _checked(
    labels: ArrayLike,
    scores: ArrayLike,
    *,
    need_defective: bool = True,
    need_good: bool = True,
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Labels as bool and scores as float64, validated; raises ValueError with the reason."""
    label_array = np.asarray(labels).ravel()
    score_array = np.asarray(scores, dtype=np.float64).ravel()
    if label_array.shape != score_array.shape:
        raise ValueError(f"got {label_array.size} labels but {score_array.size} scores")
    if not np.isin(label_array, (0, 1)).all():
        raise ValueError("labels must be 0/1 or bool (1 = defective)")
    if not np.isfinite(score_array).all():
        raise ValueError("scores contain NaN or infinite values")
    defective = label_array.astype(bool)
    if need_defective and not defective.any():
        raise ValueError("metric needs at least one defective sample (label 1); none given")
    if need_good and defective.all():
        raise ValueError("metric needs at least one good sample (label 0); none given")
    return defective, score_array


def image_auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve; the probability a defective image outscores a good one."""
    defective, score_array = _checked(labels, scores)
    return float(skm.roc_auc_score(defective, score_array))


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> Curve:
    """ROC curve: x = false alarm rate, y = detection rate (recall), thresholds descending."""
    defective, score_array = _checked(labels, scores)
    fpr, tpr, thresholds = skm.roc_curve(defective, score_array)
    return Curve(x=fpr, y=tpr, thresholds=thresholds)


def pr_curve(labels: ArrayLike, scores: ArrayLike) -> Curve:
    """Precision-recall curve: x = recall, y = precision, thresholds descending.

    The first point (recall 0, precision 1, threshold ``+inf``) is scikit-learn's
    convention for flagging nothing.
    """
    defective, score_array = _checked(labels, scores, need_good=False)
    precision, recall, thresholds = skm.precision_recall_curve(defective, score_array)
    return Curve(
        x=recall[::-1].copy(),
        y=precision[::-1].copy(),
        thresholds=np.concatenate([[np.inf], thresholds[::-1]]),
    )


def f1_max(labels: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """Best achievable F1 and the threshold reaching it (the highest such threshold).

    Only observed scores are candidate thresholds, which covers every distinct decision.
    """
    defective, score_array = _checked(labels, scores, need_good=False)
    order = np.argsort(-score_array)
    ranked = score_array[order]
    tp = np.cumsum(defective[order], dtype=np.float64)
    fp = np.arange(1, ranked.size + 1, dtype=np.float64) - tp
    run_end = np.append(ranked[:-1] != ranked[1:], True)  # one decision per tie run
    return best_f1(ranked[run_end], tp=tp[run_end], fp=fp[run_end], n_positive=int(tp[-1]))


def confusion_at(labels: ArrayLike, scores: ArrayLike, threshold: float) -> Confusion:
    """Confusion counts when images scoring ``>= threshold`` are flagged defective."""
    defective, score_array = _checked(labels, scores, need_defective=False, need_good=False)
    flagged = score_array >= threshold
    return Confusion(
        tp=int(np.sum(flagged & defective)),
        fp=int(np.sum(flagged & ~defective)),
        tn=int(np.sum(~flagged & ~defective)),
        fn=int(np.sum(~flagged & defective)),
    )
