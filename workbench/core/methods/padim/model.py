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
from workbench.core.methods.components.ops import parse_layers, upsample_maps
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
        count, sum_x, sum_xx = self._moments(images, channel_index, progress, cancel)
        mean = sum_x / count
        cov = (sum_xx - count * torch.einsum("pi,pj->pij", mean, mean)) / max(count - 1, 1)
        cov += self.p.regularization * torch.eye(d, dtype=cov.dtype, device=cov.device)
        self._set_module(self._new_module({"channel_index": channel_index, "mean": mean.float(),
                                           "inv_cov": torch.linalg.inv(cov).float()}))

    def update_statistics(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None,
                          cancel: CancelToken | None = None) -> None:
        """Add good ``images`` to every position's Gaussian without revisiting the old images.

        The old covariance is recovered from the stored inverse (minus the regularisation) and
        merged with the new images' moments (Chan et al.'s pairwise update), which equals a fit
        on old + new images up to the float32 rounding of the stored inverse."""
        cancel = cancel or CancelToken()
        n_old = int(self.metadata.get("training", {}).get("n_train") or len(self.metadata.get("training_files") or []))
        if n_old < 1:
            raise ValueError("This PaDiM package does not record how many images it was trained on, so its "
                             "statistics cannot be updated; retrain it with the new images.")
        m = self.module
        count, sum_x, sum_xx = self._moments(images, m.channel_index, progress, cancel)
        d = m.mean.shape[1]
        eye = torch.eye(d, dtype=torch.float64, device=sum_xx.device)
        mean_a = m.mean.double()
        m2_a = (torch.linalg.inv(m.inv_cov.double()) - self.p.regularization * eye) * max(n_old - 1, 1)
        mean_b = sum_x / count
        m2_b = sum_xx - count * torch.einsum("pi,pj->pij", mean_b, mean_b)
        n = n_old + count
        delta = mean_b - mean_a
        mean = mean_a + delta * (count / n)
        m2 = m2_a + m2_b + torch.einsum("pi,pj->pij", delta, delta) * (n_old * count / n)
        cov = m2 / max(n - 1, 1) + self.p.regularization * eye
        self._set_module(self._new_module({"channel_index": m.channel_index, "mean": mean.float(),
                                           "inv_cov": torch.linalg.inv(cov).float()}))
        self.metadata.setdefault("training", {})["n_train"] = n

    def _moments(self, images: Sequence[np.ndarray], channel_index: torch.Tensor, progress: ProgressCallback | None,
                 cancel: CancelToken) -> tuple[int, torch.Tensor, torch.Tensor]:
        """(count, sum x [P, d], sum x x^T [P, d, d]) of the images' embeddings, in float64."""
        report = make_reporter(progress, "extract features", len(images))
        count, sum_x, sum_xx = 0, None, None
        for feats in self.iter_feature_batches(images, cancel, report):
            x = padim_embedding(feats, self.grid, channel_index).flatten(2).permute(2, 0, 1).double()  # [P, B, d]
            sum_x = x.sum(1) if sum_x is None else sum_x + x.sum(1)
            xx = torch.einsum("pbi,pbj->pij", x, x)
            sum_xx = xx if sum_xx is None else sum_xx + xx
            count += x.shape[1]
        assert sum_x is not None and sum_xx is not None
        return count, sum_x, sum_xx

    def stage_contributions(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The squared Mahalanobis map split by backbone stage: delta^T S^-1 delta is the sum over
        channels i of delta_i (S^-1 delta)_i, grouped by the stage each kept channel comes from.
        Maps [S, S] (not smoothed) that sum to the squared-distance map; a stage's term can be
        negative where its channels correlate with another stage's."""
        m = self.module
        with torch.inference_mode():
            emb = padim_embedding(self.extractor(self.preprocess([image])), self.grid, m.channel_index)
            delta = emb[0].flatten(1).T - m.mean  # [P, d]
            weighted = (m.inv_cov @ delta.unsqueeze(-1)).squeeze(-1)  # [P, d]
            terms = delta * weighted
            bounds = torch.tensor(np.cumsum(self.extractor.channels), device=terms.device)
            stage_of = torch.bucketize(m.channel_index, bounds, right=True)
            out = {}
            for i, layer in enumerate(self.backbone_layers):
                part = terms[:, stage_of == i].sum(1).reshape(1, self.grid, self.grid)
                out[f"stage {layer}"] = upsample_maps(part, self.image_size)[0].cpu().numpy()
        return out

    def _new_module(self, tensors: dict[str, torch.Tensor]) -> PadimModel:
        return PadimModel(self.extractor, tensors["channel_index"], tensors["mean"], tensors["inv_cov"],
                          self.grid, self.image_size, self.p.smoothing_sigma)
