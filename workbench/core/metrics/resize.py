"""Bring anomaly maps and masks to ground-truth resolution before pixel metrics.

Metrics are defined at the resolution of the ground truth, so maps (usually produced at
model resolution) are upsampled, never the masks downsampled for scoring.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._pixels import binarize_mask


def _check_2d(array: NDArray[np.generic], shape: tuple[int, int]) -> None:
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {array.shape}")
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"target shape must be (height, width) with positive sizes, got {shape}")


def resize_map(anomaly_map: ArrayLike, shape: tuple[int, int]) -> NDArray[np.floating]:
    """Bilinear resize to ``shape`` = (height, width); float64 stays float64, else float32.

    Returns the input itself (as float) when it already has the requested shape.
    """
    array = np.asarray(anomaly_map)
    array = array if array.dtype == np.float64 else array.astype(np.float32)
    _check_2d(array, shape)
    if array.shape == tuple(shape):
        return array
    height, width = shape
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_LINEAR)


def resize_mask(mask: ArrayLike, shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Resize a mask (bool, 0/1, 0/255, or soft float) bilinearly as 0/1 float, cut at 0.5.

    Cutting the interpolated mask at one half puts region boundaries at their geometric
    position; nearest-neighbour resizing shifts them by up to a pixel.
    """
    binary = binarize_mask(mask)
    _check_2d(binary, shape)
    if binary.shape == tuple(shape):
        return binary
    height, width = shape
    resized = cv2.resize(binary.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return resized >= 0.5
