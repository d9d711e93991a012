"""Affine coupling blocks for the normalizing-flow methods (FastFlow, CFlow-AD).

A small, dependency-free re-implementation of the parts of FrEIA's ``AllInOneBlock`` that
FastFlow and CFlow-AD use (both papers' reference code builds their flows from it):

1. split the channels into a passive half ``x1`` (the larger half) and an active half ``x2``;
2. a subnetwork ``a = f([x1, condition])`` gives per-element log-scale and shift for ``x2``;
   the whole output is multiplied by 0.1 and the log-scale is softly clamped,
   ``s = clamp * tanh(a_s)``, so it stays in ``(-clamp, clamp)`` and training cannot blow up;
3. ``x2 <- x2 * exp(s) + a_t``; log|det J| = sum(s);
4. a learned global affine ``x <- x * g + b`` per channel with ``g = 0.1 * softplus_{beta=0.5}(w)``
   (initialised to 1), then a fixed random channel permutation so that the next block couples
   a different half.

FrEIA (PyPI 0.2) installs and works with our torch, but the workbench keeps its own ~100 lines
instead of adding an unmaintained dependency: every operation here is plain torch and
ONNX-exportable, the permutation is an index (not a permutation matrix convolution), and the
block's inverse and log-determinant are tested directly against a numerical Jacobian.

Blocks work on any tensor ``[N, C, *spatial]``: convolutional subnets give FastFlow's 2D
flow, fully connected subnets on ``[N, C]`` feature vectors give CFlow's per-fibre flow.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.methods.components.inference import InferenceModule

SubnetFactory = Callable[[int, int], nn.Module]  # (in_channels, out_channels) -> module


class AffineCoupling(nn.Module):
    """One GLOW-style affine coupling step with soft clamping, global affine and permutation."""

    def __init__(self, channels: int, subnet: SubnetFactory, clamp: float = 2.0, cond_channels: int = 0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError("A coupling block needs at least 2 channels.")
        self.channels = channels
        self.split = channels - channels // 2  # passive half: the larger one, as in FrEIA
        self.clamp = float(clamp)
        self.subnet = subnet(self.split + cond_channels, 2 * (channels - self.split))
        # 0.1 * softplus(w, beta=0.5) == 1  <=>  w = 2 log(exp(5) - 1)
        self.global_scale = nn.Parameter(torch.full((channels,), 2.0 * math.log(math.exp(5.0) - 1.0)))
        self.global_offset = nn.Parameter(torch.zeros(channels))
        perm = torch.randperm(channels, generator=generator)
        self.register_buffer("perm", perm)
        self.register_buffer("perm_inv", torch.argsort(perm))

    def _coefficients(self, x1: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.subnet(x1 if cond is None else torch.cat([x1, cond], dim=1)) * 0.1
        n = self.channels - self.split
        return self.clamp * torch.tanh(a[:, :n]), a[:, n:]

    def _global(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shape = (1, self.channels) + (1,) * (x.dim() - 2)
        scale = 0.1 * F.softplus(self.global_scale, beta=0.5)
        return scale.view(shape), self.global_offset.view(shape), torch.log(scale).sum()

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` [N, C, *spatial] -> ``(z, log|det dz/dx|)`` with z like x and the log-det [N]."""
        x1, x2 = x[:, :self.split], x[:, self.split:]
        s, t = self._coefficients(x1, cond)
        x2 = x2 * torch.exp(s) + t
        scale, offset, log_scale = self._global(x)
        y = torch.cat([x1, x2], dim=1) * scale + offset
        y = y.index_select(1, self.perm)
        pixels = x[0, 0].numel()
        return y, s.flatten(1).sum(1) + pixels * log_scale

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        scale, offset, _ = self._global(y)
        x = (y.index_select(1, self.perm_inv) - offset) / scale
        x1, x2 = x[:, :self.split], x[:, self.split:]
        s, t = self._coefficients(x1, cond)
        return torch.cat([x1, (x2 - t) * torch.exp(-s)], dim=1)


class Flow(nn.Module):
    """A sequence of coupling blocks; ``forward`` returns ``(z, log|det J|)``."""

    def __init__(self, blocks: list[AffineCoupling]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = x.new_zeros(x.shape[0])
        for block in self.blocks:
            x, ld = block(x, cond)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        for block in reversed(self.blocks):
            z = block.inverse(z, cond)
        return z


def conv_subnet(kernel_size: int, hidden_ratio: float) -> SubnetFactory:
    """FastFlow's subnet: conv k x k -> ReLU -> conv k x k, 'same' padding."""

    def make(c_in: int, c_out: int) -> nn.Module:
        hidden = max(1, int(round(c_in * hidden_ratio)))
        pad = kernel_size // 2
        return nn.Sequential(nn.Conv2d(c_in, hidden, kernel_size, padding=pad), nn.ReLU(),
                             nn.Conv2d(hidden, c_out, kernel_size, padding=pad))

    return make


def fc_subnet(hidden_ratio: float = 2.0) -> SubnetFactory:
    """CFlow's subnet: linear -> ReLU -> linear (hidden = 2 x input in the paper's code)."""

    def make(c_in: int, c_out: int) -> nn.Module:
        hidden = max(1, int(round(c_in * hidden_ratio)))
        return nn.Sequential(nn.Linear(c_in, hidden), nn.ReLU(), nn.Linear(hidden, c_out))

    return make


def gaussian_log_likelihood(z: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
    """log p(x) of a flow with a standard normal base, per sample [N]."""
    dims = z[0].numel()
    return -0.5 * z.flatten(1).pow(2).sum(1) - 0.5 * dims * math.log(2 * math.pi) + log_det


class FlowInference(InferenceModule):
    """Backbone (frozen, not saved) -> a flow network ``net`` -> anomaly map and image score: the
    inference module shape both flow methods share; each defines ``forward``."""

    frozen = ("extractor",)

    def __init__(self, extractor: nn.Module, net: nn.Module, image_size: int, anomaly_map: str,
                 sigma: float) -> None:
        super().__init__()
        self.extractor, self.net = extractor, net
        self.image_size, self.probability, self.sigma = image_size, anomaly_map == "probability", sigma
