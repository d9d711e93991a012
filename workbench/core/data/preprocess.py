"""The single preprocessing routine of training, torch inference and the ONNX runtime.

It lives here, free of torch, so that the deployment path (an exported ONNX package scored
with onnxruntime, e.g. the torch-free Inspector bundle) feeds the graph exactly the pixels
the model was trained on without importing torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_array(images: Sequence[np.ndarray], size: int,
             mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """Resize to ``size`` x ``size`` and normalise -> float32 NCHW array.

    The single preprocessing routine of training, torch inference and the ONNX runtime, so
    that exported models see exactly the pixels the model was trained on.
    """
    batch = np.stack([resize_square(img, size) for img in images]).astype(np.float32) / 255.0
    batch = (batch - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 image -> ``size`` x ``size`` (area interpolation when shrinking)."""
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"Expected an RGB uint8 image (HxWx3), got shape {img.shape} {img.dtype}.")
    if img.shape[:2] == (size, size):
        return img
    shrinking = img.shape[0] > size or img.shape[1] > size
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)
