"""Shared pieces of the reconstruction family (autoencoder, GANomaly, DRAEM).

These methods learn from raw pixels, train from scratch and need no pretrained backbone:
they have no ``backbone`` / ``weights`` parameters and the extractor is never built. Inputs are scaled to [-1, 1] (mean = std = 0.5 per
channel) whatever the backbone setting, so a package records the same normalisation the
network was trained with.

Besides the base-class interface they expose :meth:`ReconstructionModel.reconstruct`, the
RGB reconstruction the review panel shows next to the input and the residual.

Everything here is ONNX-exportable (convolutions, pads, pooling, top-k), so methods can
reuse it inside ``export_module``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.images import batches
from workbench.core.methods.components.ops import gaussian_kernel1d

T = TypeVar("T")

PIXEL_MEAN = (0.5, 0.5, 0.5)
PIXEL_STD = (0.5, 0.5, 0.5)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Normalised tensor (mean = std = 0.5) -> RGB in [0, 1] (not clipped)."""
    return x * 0.5 + 0.5


def _gaussian_filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of each channel of [B, C, H, W] with reflect padding (same size)."""
    b, c, h, w = x.shape
    radius = kernel.numel() // 2
    x = x.reshape(-1, 1, h, w)  # channels as batch: one constant 1-channel kernel (ONNX-friendly)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    return x.reshape(b, c, h, w)


def ssim_map(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel structural similarity of two [B, C, H, W] images in [0, data_range].

    Local statistics use a Gaussian window (Wang et al. 2004: sigma 1.5, K1 0.01, K2 0.03);
    the result is averaged over channels -> [B, H, W], 1 where the images agree.
    """
    kernel = gaussian_kernel1d(sigma, a.device).to(a.dtype)
    # the window radius must stay below the image size for reflect padding
    radius = min(kernel.numel() // 2, a.shape[-1] - 1, a.shape[-2] - 1)
    centre = kernel.numel() // 2
    kernel = kernel[centre - radius:centre + radius + 1]
    kernel = kernel / kernel.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    stats = _gaussian_filter(torch.cat([a, b, a * a, b * b, a * b], dim=1), kernel)
    mu_a, mu_b, aa, bb, ab = stats.chunk(5, dim=1)
    var_a = aa - mu_a * mu_a
    var_b = bb - mu_b * mu_b
    cov = ab - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    return ssim.mean(1)


def topk_mean(maps: torch.Tensor, fraction: float) -> torch.Tensor:
    """Image score from [B, H, W] maps: mean of the top ``fraction`` pixels (the max when 0)."""
    flat = maps.flatten(1)
    k = int(math.ceil(fraction * flat.shape[1]))
    if k <= 1:
        return flat.amax(1)
    return flat.topk(k, dim=1).values.mean(1)


def conv_block(c_in: int, c_out: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    """Conv -> BatchNorm -> LeakyReLU, padded so that stride 1 keeps the size and 2 halves it."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding=(kernel - 1) // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True))


def up_block(c_in: int, c_out: int) -> nn.Sequential:
    """Nearest x2 upsampling then conv block (no checkerboard artefacts of transposed convs)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv_block(c_in, c_out))


def encoder_stages(chans: list[int], c_in: int = 3) -> list[nn.Module]:
    """Per width in ``chans``: a stride-2 conv block then a stride-1 one (halving the size each)."""
    layers: list[nn.Module] = []
    for c in chans:
        layers += [conv_block(c_in, c, stride=2), conv_block(c, c)]
        c_in = c
    return layers


def decoder_stages(chans: list[int]) -> list[nn.Module]:
    """The mirror of :func:`encoder_stages` from ``chans[-1]`` channels back to RGB in [-1, 1]; the
    full-resolution stage is one output conv, since most of the compute would sit there."""
    layers: list[nn.Module] = []
    c_in = chans[-1]
    for c in reversed(chans[:-1]):
        layers += [up_block(c_in, c), conv_block(c, c)]
        c_in = c
    return layers + [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, 3, 3, padding=1), nn.Tanh()]


def random_flips(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image of the batch horizontally and/or vertically with probability 1/2 (seeded)."""
    flips = (torch.rand(x.shape[0], 2, generator=generator) < 0.5).to(x.device)
    x = torch.where(flips[:, 0].view(-1, 1, 1, 1), x.flip(-1), x)
    return torch.where(flips[:, 1].view(-1, 1, 1, 1), x.flip(-2), x)


def seeded(seed: int, build: Callable[[], T]) -> T:
    """``build()`` with torch's global generator seeded, leaving the caller's random state alone,
    so that networks start from the same weights for the same seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class ReconstructionModel(AnomalyModel):
    """Base of methods that reconstruct the input: raw-pixel inputs, ``reconstruct`` for review."""

    uses_backbone = False

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return PIXEL_MEAN, PIXEL_STD

    @abstractmethod
    def _reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW batch -> its reconstruction, normalised the same way."""

    @torch.inference_mode()
    def reconstruct(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """RGB uint8 reconstructions ``[N, S, S, 3]`` at image_size of RGB uint8 ``images``."""
        if not self.fitted:
            raise RuntimeError(f"{self.title} is not trained yet: call fit() or load a model.")
        out = np.empty((len(images), self.image_size, self.image_size, 3), np.uint8)
        for start, chunk in batches(images, self.p.batch_size):
            rec = to_unit(self._reconstruct_tensor(self.preprocess(chunk))).clamp(0, 1)
            out[start:start + len(chunk)] = (rec.permute(0, 2, 3, 1) * 255).round().byte().cpu().numpy()
        return out
