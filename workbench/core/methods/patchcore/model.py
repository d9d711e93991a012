"""PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022).

Locally aware patch features from two mid-level backbone stages form a memory bank of
normal patches, thinned by greedy coreset selection. A test patch's anomaly score is its
distance to the nearest bank patch; the image score is the largest patch score, re-weighted
by how isolated that patch's nearest neighbour is in the bank (the paper's Eq. 7), which
damps scores that fall in sparse but normal regions of feature space.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.knn import NearestNeighbors
from workbench.core.methods.ops import fuse_features, gaussian_blur, parse_layers, upsample_maps
from workbench.core.methods.patchcore.coreset import greedy_coreset
from workbench.core.methods.schema import Param


def reweighted_score(patch_scores: torch.Tensor, patches: torch.Tensor, bank: torch.Tensor,
                     support: torch.Tensor) -> torch.Tensor:
    """Paper Eq. 7: s = (1 - softmax(||m* - support||)[0]) * max patch score.

    ``support`` [B, k] holds, for each image, the bank indices of the k nearest bank patches
    to the bank patch nearest the image's worst patch (itself first).
    """
    rows = torch.arange(patch_scores.shape[0], device=patch_scores.device)
    worst = patch_scores.argmax(dim=1)
    worst_feature = patches[rows, worst]  # [B, D]
    dists = torch.linalg.vector_norm(worst_feature[:, None, :] - bank[support], dim=-1)
    return (1.0 - torch.softmax(dists, dim=1)[:, 0]) * patch_scores[rows, worst]


class PatchCore(AnomalyModel):
    name = "patchcore"
    title = "PatchCore"
    family = "Feature memory bank"
    description = ("Stores a coreset of normal patch features and scores each test patch by its "
                   "distance to the nearest stored one. Top accuracy with no training loop; "
                   "the best first choice for most inspection tasks.")
    method_params = (
        Param("layers", "choice", "2,3", "Backbone stages whose features are combined: mid-level "
              "stages describe local structure without being too ImageNet-specific.",
              choices=("1,2", "2,3", "1,2,3")),
        Param("coreset_ratio", "float", 0.1, "Fraction of training patches kept in the memory bank. "
              "Smaller is faster to score and smaller on disk, slightly less accurate.", 0.001, 1.0),
        Param("projection_dim", "int", 128, "Random projection size used only to speed up coreset "
              "selection.", 8, 1024),
        Param("num_neighbors", "int", 9, "Neighbours used to re-weight the image score (1 = plain "
              "max patch distance).", 1, 64),
        Param("smoothing_sigma", "float", 4.0, "Gaussian smoothing of the anomaly map in pixels.", 0.0, 32.0),
    )

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        self.backbone_layers = parse_layers(self.params["layers"])
        self.memory_bank: torch.Tensor | None = None
        self._nn: NearestNeighbors | None = None

    def _embed(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Backbone features -> patch embeddings [B, D, h, w]."""
        return fuse_features(feats, local_kernel=3)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        report = make_reporter(progress, "extract features", len(images))
        patches = []
        for feats in self.iter_feature_batches(images, cancel, report):
            emb = self._embed(feats)
            patches.append(emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]))
        bank = torch.cat(patches)
        n_select = max(1, int(round(bank.shape[0] * float(self.params["coreset_ratio"]))))
        selected = greedy_coreset(
            bank, n_select, int(self.params["projection_dim"]), int(self.params["seed"]), cancel,
            make_reporter(progress, "coreset selection", n_select))
        self._set_bank(bank[selected].contiguous())

    def _set_bank(self, bank: torch.Tensor) -> None:
        self.memory_bank = bank.to(self.device)
        self._nn = NearestNeighbors(self.memory_bank)

    def _predict_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self._nn is not None and self.memory_bank is not None
        emb = self._embed(self.extractor(x))
        b, d, h, w = emb.shape
        flat = emb.permute(0, 2, 3, 1).reshape(-1, d)
        dist, idx = self._nn.search(flat, 1)
        patch_scores = dist[:, 0].reshape(b, h * w)
        nearest = idx[:, 0].reshape(b, h * w)
        scores = self._reweighted_scores(patch_scores, nearest, flat.reshape(b, h * w, d))
        maps = upsample_maps(patch_scores.reshape(b, h, w), self.image_size)
        maps = gaussian_blur(maps, float(self.params["smoothing_sigma"]))
        return scores, maps

    def _reweighted_scores(self, patch_scores: torch.Tensor, nearest: torch.Tensor,
                           patches: torch.Tensor) -> torch.Tensor:
        assert self._nn is not None and self.memory_bank is not None
        k = int(self.params["num_neighbors"])
        if k <= 1:
            return patch_scores.amax(dim=1)
        rows = torch.arange(patch_scores.shape[0], device=patch_scores.device)
        _, support = self._nn.search(self.memory_bank[nearest[rows, patch_scores.argmax(dim=1)]], k)
        return reweighted_score(patch_scores, patches, self.memory_bank, support)

    def export_module(self) -> torch.nn.Module:
        from workbench.core.methods.patchcore.export import PatchCoreExport

        assert self._nn is not None and self.memory_bank is not None
        k = int(self.params["num_neighbors"])
        support = self._nn.search(self.memory_bank, k)[1] if k > 1 else None
        return PatchCoreExport(self.extractor, self.memory_bank, support, self.image_size,
                               float(self.params["smoothing_sigma"]))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        assert self.memory_bank is not None
        return {"memory_bank": self.memory_bank.detach().cpu().contiguous()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self._set_bank(tensors["memory_bank"].float())
        self.fitted = True
