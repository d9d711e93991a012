"""PatchCore as one ONNX-exportable module: backbone, patch embedding, exact nearest-neighbour
distances to the memory bank (a constant) by matrix product, and the re-weighted image score.

faiss is used for speed inside the workbench; in the exported graph the search is a dense
``||q||^2 - 2 q.b + ||b||^2`` followed by a min, which gives the same distances, and each
bank patch's k nearest bank neighbours (for the re-weighting) are precomputed at export time.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.core.methods.ops import fuse_features, gaussian_blur, upsample_maps


class PatchCoreExport(nn.Module):
    def __init__(self, extractor: nn.Module, bank: torch.Tensor, support: torch.Tensor | None,
                 image_size: int, sigma: float) -> None:
        super().__init__()
        self.extractor = extractor
        self.register_buffer("bank", bank.detach().float().clone())
        self.register_buffer("bank_sq", (bank.float() ** 2).sum(1))
        self.register_buffer("support", support.clone() if support is not None else torch.zeros(0, dtype=torch.long))
        self.reweight = support is not None
        self.image_size = image_size
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from workbench.core.methods.patchcore.model import reweighted_score

        emb = fuse_features(self.extractor(x), local_kernel=3)
        b, d, h, w = emb.shape
        patches = emb.permute(0, 2, 3, 1).reshape(b, h * w, d)
        dist2 = (patches ** 2).sum(-1, keepdim=True) - 2.0 * patches @ self.bank.T + self.bank_sq
        min_dist2, nearest = dist2.min(dim=-1)
        patch_scores = min_dist2.clamp_min(0.0).sqrt()
        if self.reweight:
            worst_nearest = nearest.gather(1, patch_scores.argmax(dim=1, keepdim=True)).squeeze(1)
            scores = reweighted_score(patch_scores, patches, self.bank, self.support[worst_nearest])
        else:
            scores = patch_scores.amax(dim=1)
        maps = gaussian_blur(upsample_maps(patch_scores.reshape(b, h, w), self.image_size), self.sigma)
        return scores, maps
