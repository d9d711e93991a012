"""PaDiM inference as one module: backbone, random channel subset on the Gaussian grid, and the
Mahalanobis distance of every position to its Gaussian (mean and inverse covariance buffers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.methods.components.inference import InferenceModule
from workbench.core.methods.components.ops import fuse_features, gaussian_blur, upsample_maps


def padim_embedding(feats: list[torch.Tensor], grid: int, channel_index: torch.Tensor) -> torch.Tensor:
    """Backbone features -> selected-channel embeddings [B, d, grid, grid]."""
    emb = fuse_features(feats)
    if emb.shape[-1] != grid:
        emb = F.adaptive_avg_pool2d(emb, grid)
    return emb.index_select(1, channel_index)


class PadimModel(InferenceModule):
    frozen = ("extractor",)

    def __init__(self, extractor: nn.Module, channel_index: torch.Tensor, mean: torch.Tensor,
                 inv_cov: torch.Tensor, grid: int, image_size: int, sigma: float) -> None:
        super().__init__()
        self.extractor = extractor
        self.register_buffer("channel_index", channel_index.long())
        self.register_buffer("mean", mean.float())  # [P, d]
        # contiguous, so a fitted and a reloaded model run the very same kernels (identical scores)
        self.register_buffer("inv_cov", inv_cov.float().contiguous())  # [P, d, d]
        self.grid, self.image_size, self.sigma = grid, image_size, sigma

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = padim_embedding(self.extractor(x), self.grid, self.channel_index)
        b, d, h, w = emb.shape
        delta = emb.flatten(2).permute(0, 2, 1) - self.mean  # [B, P, d]
        # (delta^T S^-1 delta) per position, as a batched mat-mul over positions
        dist2 = ((delta.permute(1, 0, 2) @ self.inv_cov) * delta.permute(1, 0, 2)).sum(-1).T.clamp_min(0)
        maps = upsample_maps(dist2.sqrt().reshape(b, h, w), self.image_size)
        maps = gaussian_blur(maps, self.sigma)
        return maps.flatten(1).amax(1), maps
