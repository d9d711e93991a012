"""CutPaste augmentations (Li et al., "CutPaste: Self-Supervised Learning for Anomaly Detection
and Localization", CVPR 2021), on torch images in [0, 1].

* ``cutpaste``: a rectangle of 2-15% of the image area with log-uniform aspect ratio in
  [0.3, 3.3] is cut at one random place, colour-jittered, and pasted at another.
* ``cutpaste_scar``: a thin rectangle (width 2-16, length 10-25 px at 256 px, scaled with the
  image size) is cut, jittered, rotated by -45..45 degrees and pasted.

Each call returns the augmented image and a :class:`Paste` record saying exactly which
pixels were replaced and from where, so the augmentation can be tested and visualised.
Randomness comes only from the given ``torch.Generator`` (reproducible with a seed).

Deviation: the colour jitter changes brightness, contrast and saturation (each up to
``jitter``) but not hue, to stay a few lines of plain tensor code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SCAR_WIDTH = (2, 16)  # pixels at 256 px, as in the paper
SCAR_LENGTH = (10, 25)
SCAR_ANGLE = (-45.0, 45.0)
AREA_RATIO = (0.02, 0.15)
ASPECT_RATIO = (0.3, 1 / 0.3)


@dataclass
class Paste:
    """What one augmentation did: ``mask`` [H, W] bool marks every replaced pixel."""

    kind: str
    source: tuple[int, int, int, int]  # (top, left, height, width) of the cut rectangle
    target: tuple[int, int]  # (top, left) of the pasted, possibly rotated, block
    angle: float  # degrees, 0 for plain CutPaste
    mask: torch.Tensor


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high] (inclusive)."""
    return int(torch.randint(low, high + 1, (), generator=gen))


def color_jitter(patch: torch.Tensor, gen: torch.Generator, strength: float) -> torch.Tensor:
    """Random brightness, contrast and saturation change of a [3, h, w] patch in [0, 1]."""
    if strength <= 0:
        return patch
    out = patch * _uniform(gen, 1 - strength, 1 + strength)  # brightness
    gray = (0.299 * out[0] + 0.587 * out[1] + 0.114 * out[2]).unsqueeze(0)
    c = _uniform(gen, 1 - strength, 1 + strength)
    out = (out - gray.mean()) * c + gray.mean()  # contrast
    gray = (0.299 * out[0] + 0.587 * out[1] + 0.114 * out[2]).unsqueeze(0)
    s = _uniform(gen, 1 - strength, 1 + strength)
    out = (out - gray) * s + gray  # saturation
    return out.clamp(0.0, 1.0)


def rotate_nearest(patch: torch.Tensor, angle: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate [C, h, w] by ``angle`` degrees about its centre onto a square canvas that holds it.

    Nearest-neighbour sampling, so every covered canvas pixel is an exact copy of a patch
    pixel. Returns (canvas [C, D, D], covered mask [D, D] bool).
    """
    c, h, w = patch.shape
    size = int(math.ceil(math.hypot(h, w))) + 1
    centre = (size - 1) / 2.0
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    theta = math.radians(angle)
    cos, sin = math.cos(theta), math.sin(theta)
    # inverse rotation: canvas pixel -> patch coordinates
    dy, dx = ys - centre, xs - centre
    src_y = torch.round(cos * dy + sin * dx + (h - 1) / 2.0).long()
    src_x = torch.round(-sin * dy + cos * dx + (w - 1) / 2.0).long()
    inside = (src_y >= 0) & (src_y < h) & (src_x >= 0) & (src_x < w)
    canvas = torch.zeros(c, size, size, dtype=patch.dtype, device=patch.device)
    mask = inside.to(patch.device)
    flat = (src_y.clamp(0, h - 1) * w + src_x.clamp(0, w - 1)).to(patch.device)
    canvas[:, mask] = patch.reshape(c, -1)[:, flat[mask]]
    return canvas, mask


def _paste(image: torch.Tensor, block: torch.Tensor, block_mask: torch.Tensor, gen: torch.Generator
           ) -> tuple[torch.Tensor, tuple[int, int], torch.Tensor]:
    _, height, width = image.shape
    bh, bw = block_mask.shape
    top, left = _randint(gen, 0, height - bh), _randint(gen, 0, width - bw)
    mask = torch.zeros(height, width, dtype=torch.bool, device=image.device)
    mask[top:top + bh, left:left + bw] = block_mask
    out = image.clone()
    region = out[:, top:top + bh, left:left + bw]
    out[:, top:top + bh, left:left + bw] = torch.where(block_mask, block, region)
    return out, (top, left), mask


def cutpaste(image: torch.Tensor, gen: torch.Generator, jitter: float = 0.1,
             area_ratio: tuple[float, float] = AREA_RATIO,
             aspect_ratio: tuple[float, float] = ASPECT_RATIO) -> tuple[torch.Tensor, Paste]:
    """CutPaste (normal) on one [3, H, W] image in [0, 1]."""
    _, height, width = image.shape
    area = _uniform(gen, *area_ratio) * height * width
    aspect = math.exp(_uniform(gen, math.log(aspect_ratio[0]), math.log(aspect_ratio[1])))
    h = max(1, min(height, int(round(math.sqrt(area / aspect)))))
    w = max(1, min(width, int(round(math.sqrt(area * aspect)))))
    sy, sx = _randint(gen, 0, height - h), _randint(gen, 0, width - w)
    patch = color_jitter(image[:, sy:sy + h, sx:sx + w], gen, jitter)
    full = torch.ones(h, w, dtype=torch.bool, device=image.device)
    out, target, mask = _paste(image, patch, full, gen)
    return out, Paste("cutpaste", (sy, sx, h, w), target, 0.0, mask)


def cutpaste_scar(image: torch.Tensor, gen: torch.Generator, jitter: float = 0.1,
                  width_range: tuple[int, int] = SCAR_WIDTH, length_range: tuple[int, int] = SCAR_LENGTH,
                  angle_range: tuple[float, float] = SCAR_ANGLE) -> tuple[torch.Tensor, Paste]:
    """CutPaste-Scar on one [3, H, W] image in [0, 1]; scar sizes scale with the image (256 px)."""
    _, height, width = image.shape
    scale = min(height, width) / 256.0
    w = max(1, int(round(_randint(gen, *width_range) * scale)))
    h = max(2, int(round(_randint(gen, *length_range) * scale)))
    h, w = min(h, height), min(w, width)
    sy, sx = _randint(gen, 0, height - h), _randint(gen, 0, width - w)
    patch = color_jitter(image[:, sy:sy + h, sx:sx + w], gen, jitter)
    angle = _uniform(gen, *angle_range)
    block, block_mask = rotate_nearest(patch, angle)
    if block_mask.shape[0] > min(height, width):  # tiny images: paste unrotated
        block, block_mask, angle = patch, torch.ones(h, w, dtype=torch.bool, device=image.device), 0.0
    out, target, mask = _paste(image, block, block_mask, gen)
    return out, Paste("scar", (sy, sx, h, w), target, angle, mask)


def three_way_batch(images: torch.Tensor, gen: torch.Generator, jitter: float = 0.1
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 3, H, W] in [0, 1] -> the 3-way batch [3B, ...] (originals, CutPaste, scar) and labels
    0 (normal), 1 (CutPaste), 2 (scar)."""
    pasted = torch.stack([cutpaste(img, gen, jitter)[0] for img in images])
    scars = torch.stack([cutpaste_scar(img, gen, jitter)[0] for img in images])
    b = images.shape[0]
    labels = torch.arange(3, device=images.device).repeat_interleave(b)
    return torch.cat([images, pasted, scars]), labels
