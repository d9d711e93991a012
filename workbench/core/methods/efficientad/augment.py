"""Seeded tensor augmentations for EfficientAD (work on normalised NCHW batches)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


class Augmenter:
    """Undoes the input normalisation, augments in [0, 1] RGB and normalises again."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], seed: int, device: torch.device) -> None:
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.gen = torch.Generator().manual_seed(seed)

    def _rand(self, lo: float = 0.0, hi: float = 1.0) -> float:
        return float(lo + (hi - lo) * torch.rand((), generator=self.gen))

    def color(self, x: torch.Tensor) -> torch.Tensor:
        """The paper's autoencoder augmentation: brightness, contrast or saturation x U(0.8, 1.2)."""
        rgb = x * self.std + self.mean
        out = []
        for img in rgb:
            kind, factor = int(torch.randint(3, (), generator=self.gen)), self._rand(0.8, 1.2)
            out.append(_jitter(img, kind, factor))
        return (torch.stack(out).clamp(0, 1) - self.mean) / self.std

    def distill(self, x: torch.Tensor) -> torch.Tensor:
        """Augmentation for teacher distillation (no ImageNet offline): random resized crop
        (50-100 % of the area), flips, quarter turns, colour jitter and grayscale, so the
        teacher sees more varied patches than the few good images contain."""
        rgb = x * self.std + self.mean
        size = x.shape[-1]
        out = []
        for img in rgb:
            scale = self._rand(0.5, 1.0)
            side = max(8, int(round(size * scale ** 0.5)))
            top = int(torch.randint(size - side + 1, (), generator=self.gen))
            left = int(torch.randint(size - side + 1, (), generator=self.gen))
            img = img[:, top:top + side, left:left + side]
            if side != size:
                img = F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False)[0]
            if self._rand() < 0.5:
                img = img.flip(-1)
            if self._rand() < 0.5:
                img = img.flip(-2)
            img = torch.rot90(img, int(torch.randint(4, (), generator=self.gen)), dims=(-2, -1))
            for kind in range(3):
                img = _jitter(img, kind, self._rand(0.8, 1.2))
            if self._rand() < 0.1:
                img = _gray(img).expand(3, -1, -1)
            out.append(img)
        return (torch.stack(out).clamp(0, 1) - self.mean) / self.std


def _gray(img: torch.Tensor) -> torch.Tensor:
    return (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2])[None]


def _jitter(img: torch.Tensor, kind: int, factor: float) -> torch.Tensor:
    if kind == 0:  # brightness
        return (img * factor).clamp(0, 1)
    if kind == 1:  # contrast
        return ((img - _gray(img).mean()) * factor + _gray(img).mean()).clamp(0, 1)
    gray = _gray(img)  # saturation
    return ((img - gray) * factor + gray).clamp(0, 1)
