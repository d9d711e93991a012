"""Pixel-level metrics pooled over every pixel of every test image.

Masks and maps must already share ground-truth resolution (see ``resize_map``). Scores are
compared at float32 precision, the precision models produce, and all pixels are ranked with
one sort of 8 bytes per pixel, so large test sets fit in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._pixels import checked_pairs
from ._ranking import best_f1, descending_runs, sorted_keys, trapezoid


def _pixel_runs(
    masks: Sequence[ArrayLike], maps: Sequence[ArrayLike]
) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64]]:
    """Distinct thresholds (descending) with cumulative OK (fp) and defect (tp) pixel counts."""
    pairs = checked_pairs(masks, maps)
    keys = sorted_keys(
        ((scores, binary.view(np.uint8)) for binary, scores in pairs),
        total=sum(binary.size for binary, _ in pairs),
    )
    thresholds, counts = descending_runs(keys, np.eye(2, dtype=np.float64))
    if counts[1, -1] == 0:
        raise ValueError("no defect pixel in any mask; pixel metrics need at least one")
    if counts[0, -1] == 0:
        raise ValueError("every pixel is a defect pixel; pixel metrics need OK pixels too")
    return thresholds, counts[0], counts[1]


def pixel_auroc(masks: Sequence[ArrayLike], maps: Sequence[ArrayLike]) -> float:
    """Pixel AUROC: chance that a random defect pixel outscores a random OK pixel.

    Ties count one half, exactly like the Mann-Whitney statistic.
    """
    _, fp, tp = _pixel_runs(masks, maps)
    fpr = np.concatenate([[0.0], fp / fp[-1]])
    tpr = np.concatenate([[0.0], tp / tp[-1]])
    return trapezoid(fpr, tpr)


def pixel_f1_max(masks: Sequence[ArrayLike], maps: Sequence[ArrayLike]) -> tuple[float, float]:
    """Best pixel F1 over all thresholds and the (highest) threshold reaching it.

    A pixel is predicted defective when its float32 score is ``>= threshold``.
    """
    thresholds, fp, tp = _pixel_runs(masks, maps)
    return best_f1(thresholds, tp=tp, fp=fp, n_positive=int(tp[-1]))
