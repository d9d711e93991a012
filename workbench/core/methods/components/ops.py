"""Small tensor operations several methods share (feature fusion, smoothing, upsampling)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def parse_layers(text: str) -> tuple[int, ...]:
    """'1,2,3' -> (1, 2, 3), validated."""
    try:
        layers = tuple(sorted({int(t) for t in str(text).split(",") if t.strip()}))
    except ValueError:
        raise ValueError(f"Layers must be comma-separated stage numbers like '2,3'; got {text!r}.") from None
    if not layers or min(layers) < 0:
        raise ValueError(f"Layers must be non-negative stage numbers like '2,3'; got {text!r}.")
    return layers


def map_and_deepest_layers(text: str, what: str, deepest: int = 4) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(map layers, backbone layers) of methods that take their map from the ``text`` stages and
    their image descriptor from the ``deepest`` (stride-32) stage as well; ``what`` names the
    map layers in the error message."""
    layers = parse_layers(text)
    if max(layers) >= deepest:
        raise ValueError(f"{what} must be below stage {deepest}.")
    return layers, layers + (deepest,)


def fuse_features(features: list[torch.Tensor], local_kernel: int = 0) -> torch.Tensor:
    """Concatenate stages at the resolution of the first (finest) one.

    ``local_kernel`` > 1 first averages each feature over its k x k neighbourhood
    (PatchCore's "locally aware" patch features), which makes patches robust to small
    misalignments without losing resolution.
    """
    size = features[0].shape[-2:]
    out = []
    for feat in features:
        if local_kernel > 1:
            feat = F.avg_pool2d(feat, local_kernel, stride=1, padding=local_kernel // 2)
        if feat.shape[-2:] != size:
            feat = F.interpolate(feat, size=size, mode="bilinear", align_corners=False)
        out.append(feat)
    return torch.cat(out, dim=1)


def gaussian_kernel1d(sigma: float, device: torch.device | None = None) -> torch.Tensor:
    radius = max(1, int(math.ceil(4.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``maps`` [B, H, W] with reflect padding; sigma <= 0 is a no-op."""
    if sigma <= 0:
        return maps
    kernel = gaussian_kernel1d(sigma, maps.device).to(maps.dtype)
    radius = kernel.numel() // 2
    x = maps.unsqueeze(1)
    x = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x.squeeze(1)


def upsample_maps(maps: torch.Tensor, size: int) -> torch.Tensor:
    """[B, h, w] -> [B, size, size] bilinear."""
    return F.interpolate(maps.unsqueeze(1), size=(size, size), mode="bilinear", align_corners=False).squeeze(1)
