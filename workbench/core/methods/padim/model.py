"""PaDiM (Defard et al., "PaDiM: a Patch Distribution Modeling Framework", ICPR 2021).

Every feature-map position gets its own multivariate Gaussian of normal patch embeddings
(a randomly chosen subset of backbone channels keeps the covariances small). The anomaly
map is the Mahalanobis distance of each test patch to its position's Gaussian, so PaDiM
suits aligned parts (objects in a fixture) best; textures work too since every position
sees the same statistics.

Means and covariances are accumulated in float64 as running sums, so training memory does
not grow with the number of images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.ops import fuse_features, gaussian_blur, parse_layers, upsample_maps
from workbench.core.methods.schema import Param


class Padim(AnomalyModel):
    name = "padim"
    title = "PaDiM"
    family = "Feature distribution (Gaussian)"
    description = ("Fits a Gaussian of normal features at every image position and scores patches by "
                   "Mahalanobis distance. Fast to train, explainable, best for aligned parts.")
    method_params = (
        Param("layers", "choice", "1,2,3", "Backbone stages combined into the patch embedding.",
              choices=("1,2", "2,3", "1,2,3")),
        Param("n_features", "int", 100, "Channels kept by random selection. More is more accurate "
              "but the model grows with the square of this number.", 8, 550),
        Param("grid_stride", "choice", "8", "Stride of the Gaussian grid in input pixels; 4 is the "
              "paper's (finer, 4x the size).", choices=("4", "8", "16")),
        Param("regularization", "float", 0.01, "Added to the covariance diagonal for stability.", 1e-6, 10.0),
        Param("smoothing_sigma", "float", 4.0, "Gaussian smoothing of the anomaly map in pixels.", 0.0, 32.0),
    )

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        self.backbone_layers = parse_layers(self.params["layers"])
        self.channel_index: torch.Tensor | None = None
        self.mean: torch.Tensor | None = None  # [P, d]
        self.inv_cov: torch.Tensor | None = None  # [P, d, d]

    def _embed(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Backbone features -> selected-channel embeddings [B, d, h, w] on the grid."""
        emb = fuse_features(feats)
        grid = self.image_size // int(self.params["grid_stride"])
        if emb.shape[-1] != grid:
            emb = torch.nn.functional.adaptive_avg_pool2d(emb, grid)
        assert self.channel_index is not None
        return emb.index_select(1, self.channel_index)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        total_channels = sum(self.extractor.channels)
        d = min(int(self.params["n_features"]), total_channels)
        generator = torch.Generator().manual_seed(int(self.params["seed"]))
        self.channel_index = torch.randperm(total_channels, generator=generator)[:d].sort().values.to(self.device)
        report = make_reporter(progress, "extract features", len(images))
        count, sum_x, sum_xx = 0, None, None
        for feats in self.iter_feature_batches(images, cancel, report):
            emb = self._embed(feats)
            x = emb.flatten(2).permute(2, 0, 1).double()  # [P, B, d]
            sum_x = x.sum(1) if sum_x is None else sum_x + x.sum(1)
            xx = torch.einsum("pbi,pbj->pij", x, x)
            sum_xx = xx if sum_xx is None else sum_xx + xx
            count += x.shape[1]
        assert sum_x is not None and sum_xx is not None
        mean = sum_x / count
        cov = (sum_xx - count * torch.einsum("pi,pj->pij", mean, mean)) / max(count - 1, 1)
        cov += float(self.params["regularization"]) * torch.eye(d, dtype=cov.dtype, device=cov.device)
        self.mean = mean.float()
        # contiguous, so a fitted and a reloaded model run the very same kernels (identical scores)
        self.inv_cov = torch.linalg.inv(cov).float().contiguous()

    def _predict_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.export_module()(x)

    def export_module(self) -> torch.nn.Module:
        assert self.mean is not None and self.inv_cov is not None and self.channel_index is not None
        return PadimExport(self, self.mean, self.inv_cov)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        assert self.mean is not None and self.inv_cov is not None and self.channel_index is not None
        return {"channel_index": self.channel_index.cpu(), "mean": self.mean.cpu(),
                "inv_cov": self.inv_cov.cpu().contiguous()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.channel_index = tensors["channel_index"].long().to(self.device)
        self.mean = tensors["mean"].float().to(self.device)
        self.inv_cov = tensors["inv_cov"].float().to(self.device)
        self.fitted = True


class PadimExport(torch.nn.Module):
    """Inference as a plain module (used by predict and by the ONNX export alike)."""

    def __init__(self, model: Padim, mean: torch.Tensor, inv_cov: torch.Tensor) -> None:
        super().__init__()
        self.extractor = model.extractor
        self.embed = model._embed
        self.mean, self.inv_cov = mean, inv_cov
        self.image_size = model.image_size
        self.sigma = float(model.params["smoothing_sigma"])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(self.extractor(x))
        b, d, h, w = emb.shape
        delta = emb.flatten(2).permute(0, 2, 1) - self.mean  # [B, P, d]
        # (delta^T S^-1 delta) per position, as a batched mat-mul over positions
        dist2 = ((delta.permute(1, 0, 2) @ self.inv_cov) * delta.permute(1, 0, 2)).sum(-1).T.clamp_min(0)
        maps = upsample_maps(dist2.sqrt().reshape(b, h, w), self.image_size)
        maps = gaussian_blur(maps, self.sigma)
        return maps.flatten(1).amax(1), maps
