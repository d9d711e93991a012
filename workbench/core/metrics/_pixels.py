"""Validation of per-image (mask, anomaly map) pairs for pixel metrics.

Images may have different sizes, so inputs are sequences of 2-D arrays rather than one
stacked array; a stacked ``(N, H, W)`` array also works because it iterates per image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray


def binarize_mask(mask: ArrayLike) -> NDArray[np.bool_]:
    """Defect pixels of a ground-truth mask.

    Integer/bool masks (0/1 or 0/255) are defective where ``> 0``; float masks are assumed
    to be resized soft masks and are cut at ``>= 0.5``.
    """
    array = np.asarray(mask)
    if np.issubdtype(array.dtype, np.floating):
        return array >= 0.5
    return array > 0


def checked_pairs(
    masks: Sequence[ArrayLike], maps: Sequence[ArrayLike]
) -> list[tuple[NDArray[np.bool_], NDArray[np.generic]]]:
    """Binarised masks paired with their maps, after checking counts and shapes."""
    if len(masks) != len(maps):
        raise ValueError(f"got {len(masks)} masks but {len(maps)} anomaly maps")
    if len(masks) == 0:
        raise ValueError("no images given")
    pairs = []
    for i, (mask, amap) in enumerate(zip(masks, maps)):
        binary = binarize_mask(mask)
        scores = np.asarray(amap)
        if binary.ndim != 2 or binary.shape != scores.shape:
            raise ValueError(
                f"image {i}: mask shape {binary.shape} and map shape {scores.shape} must be "
                "equal and 2-D; resize the map to ground-truth resolution with resize_map"
            )
        pairs.append((binary, scores))
    return pairs
