"""DFM inference as one module: backbone, patch PCA reconstruction error per position (the map)
and the global PCA's reconstruction error or NLL of the pooled features (the image score)."""

from __future__ import annotations

import torch
from torch import nn

from workbench.core.methods.components.inference import InferenceModule
from workbench.core.methods.components.ops import fuse_features, gaussian_blur, upsample_maps

DEEPEST_STAGE = 4  # stride-32 stage of the 5-stage timm feature pyramids (EfficientNet, ResNet)


def pca_from_moments(count: int, sum_x: torch.Tensor, sum_xx: torch.Tensor,
                     variance: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean [D], components [n, D], variances [n]) keeping the fewest leading components whose
    explained variance reaches ``variance`` (a fraction in (0, 1])."""
    mean = sum_x / count
    cov = (sum_xx - count * torch.outer(mean, mean)) / max(count - 1, 1)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    evals, evecs = evals.flip(0).clamp_min(0.0), evecs.flip(1)
    ratio = torch.cumsum(evals, 0) / evals.sum().clamp_min(1e-30)
    n = min(int((ratio < variance - 1e-9).sum()) + 1, int((evals > 0).sum()) or 1)
    return (mean.float().contiguous(), evecs[:, :n].T.float().contiguous(),
            evals[:n].float().clamp_min(1e-12).contiguous())


def reconstruction_error(x: torch.Tensor, mean: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """Squared distance of rows of ``x`` [..., D] to the PCA subspace -> [...]."""
    centred = x - mean
    residual = centred - (centred @ components.T) @ components
    return (residual * residual).sum(-1)


class Pca(nn.Module):
    """A PCA model as buffers: mean [D], components [n, D], variances [n]."""

    def __init__(self, mean: torch.Tensor, components: torch.Tensor, variances: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float().contiguous())
        self.register_buffer("components", components.float().contiguous())
        self.register_buffer("variances", variances.float().contiguous())


class DfmModel(InferenceModule):
    """Backbone + both PCA models (``patch`` and ``global``) -> (scores[B], maps[B, S, S])."""

    frozen = ("extractor",)

    def __init__(self, extractor: nn.Module, map_stages: int, local_kernel: int, image_size: int,
                 sigma: float, image_score: str, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.extractor = extractor
        self.map_stages, self.local_kernel = map_stages, local_kernel
        self.image_size, self.sigma, self.image_score = image_size, sigma, image_score
        for name in ("patch", "global"):
            self.add_module(name, Pca(*(tensors[f"{name}.{k}"] for k in ("mean", "components", "variances"))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.extractor(x)
        emb = fuse_features(feats[:self.map_stages], local_kernel=self.local_kernel)
        patch, pooled_pca = self._modules["patch"], self._modules["global"]
        err = reconstruction_error(emb.permute(0, 2, 3, 1), patch.mean, patch.components)
        maps = gaussian_blur(upsample_maps(err, self.image_size), self.sigma)
        if self.image_score == "map_max":
            return maps.flatten(1).amax(1), maps
        pooled = torch.cat([f.mean(dim=(2, 3)) for f in feats], dim=1)
        if self.image_score == "nll":
            z = (pooled - pooled_pca.mean) @ pooled_pca.components.T
            scores = (z * z / pooled_pca.variances).sum(1)
        else:
            scores = reconstruction_error(pooled, pooled_pca.mean, pooled_pca.components)
        return scores, maps
