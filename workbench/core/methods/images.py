"""Image sequences and preprocessing shared by every method.

Methods take any ``Sequence`` of RGB uint8 arrays. :class:`LazyImages` reads files on
demand so that a 5,000-image folder never has to sit in memory at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from workbench.core.data.io import read_image
from workbench.core.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, resize_square, to_array

__all__ = ["LazyImages", "batches", "resize_square", "to_array", "to_tensor"]


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


def to_tensor(images: Sequence[np.ndarray], size: int,
              mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """:func:`to_array` as a torch tensor."""
    return torch.from_numpy(to_array(images, size, mean, std))


def batches(images: Sequence[np.ndarray], batch_size: int) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Yield ``(start_index, images)`` chunks."""
    for start in range(0, len(images), batch_size):
        yield start, [images[i] for i in range(start, min(start + batch_size, len(images)))]
