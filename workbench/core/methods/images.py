"""Image sequences and preprocessing shared by every method.

Methods take any ``Sequence`` of RGB uint8 arrays. :class:`LazyImages` reads files on
demand so that a 5,000-image folder never has to sit in memory at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from workbench.core.backbones.extractor import IMAGENET_MEAN, IMAGENET_STD
from workbench.core.data.io import read_image


class LazyImages(Sequence[np.ndarray]):
    """A sequence of images read from ``paths`` when indexed."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return LazyImages(self.paths[index])
        return read_image(self.paths[index])


def to_array(images: Sequence[np.ndarray], size: int,
             mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """Resize to ``size`` x ``size`` and normalise -> float32 NCHW array.

    The single preprocessing routine of training, torch inference and the ONNX runtime, so
    that exported models see exactly the pixels the model was trained on.
    """
    batch = np.stack([resize_square(img, size) for img in images]).astype(np.float32) / 255.0
    batch = (batch - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def to_tensor(images: Sequence[np.ndarray], size: int,
              mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """:func:`to_array` as a torch tensor."""
    return torch.from_numpy(to_array(images, size, mean, std))


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 image -> ``size`` x ``size`` (area interpolation when shrinking)."""
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"Expected an RGB uint8 image (HxWx3), got shape {img.shape} {img.dtype}.")
    if img.shape[:2] == (size, size):
        return img
    shrinking = img.shape[0] > size or img.shape[1] > size
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def batches(images: Sequence[np.ndarray], batch_size: int) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Yield ``(start_index, images)`` chunks."""
    for start in range(0, len(images), batch_size):
        yield start, [images[i] for i in range(start, min(start + batch_size, len(images)))]
