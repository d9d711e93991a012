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
from workbench.core.methods.components.ops import parse_layers
from workbench.core.methods.padim.torch_model import PadimModel, padim_embedding
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

    tiny_params = {"image_size": 64}

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        self.backbone_layers = parse_layers(self.p.layers)

    @property
    def grid(self) -> int:
        return self.image_size // int(self.p.grid_stride)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        total_channels = sum(self.extractor.channels)
        d = min(self.p.n_features, total_channels)
        generator = torch.Generator().manual_seed(self.p.seed)
        channel_index = torch.randperm(total_channels, generator=generator)[:d].sort().values.to(self.device)
        report = make_reporter(progress, "extract features", len(images))
        count, sum_x, sum_xx = 0, None, None
        for feats in self.iter_feature_batches(images, cancel, report):
            emb = padim_embedding(feats, self.grid, channel_index)
            x = emb.flatten(2).permute(2, 0, 1).double()  # [P, B, d]
            sum_x = x.sum(1) if sum_x is None else sum_x + x.sum(1)
            xx = torch.einsum("pbi,pbj->pij", x, x)
            sum_xx = xx if sum_xx is None else sum_xx + xx
            count += x.shape[1]
        assert sum_x is not None and sum_xx is not None
        mean = sum_x / count
        cov = (sum_xx - count * torch.einsum("pi,pj->pij", mean, mean)) / max(count - 1, 1)
        cov += self.p.regularization * torch.eye(d, dtype=cov.dtype, device=cov.device)
        self._set_module(self._new_module({"channel_index": channel_index, "mean": mean.float(),
                                           "inv_cov": torch.linalg.inv(cov).float()}))

    def _new_module(self, tensors: dict[str, torch.Tensor]) -> PadimModel:
        return PadimModel(self.extractor, tensors["channel_index"], tensors["mean"], tensors["inv_cov"],
                          self.grid, self.image_size, self.p.smoothing_sigma)
