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
from workbench.core.methods.components.coreset import StreamingCoreset
from workbench.core.methods.components.provenance import (NearestPatch, append_bank_sources, bank_sources,
                                                          extend_coverage, set_bank_sources, source_of)
from workbench.core.methods.components.ops import fuse_features, parse_layers
from workbench.core.methods.patchcore.torch_model import PatchCoreModel
from workbench.core.methods.schema import Param


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
        Param("max_bank_size", "int", 10000, "Most patches kept in the memory bank (0 = no limit). "
              "Once the training set is large enough for the bank to cover its features, more images "
              "no longer grow the bank, so training time grows linearly with the number of images.",
              0, 10_000_000),
        Param("projection_dim", "int", 128, "Random projection size used only to speed up coreset "
              "selection.", 8, 1024),
        Param("num_neighbors", "int", 9, "Neighbours used to re-weight the image score (1 = plain "
              "max patch distance).", 1, 64),
        Param("smoothing_sigma", "float", 4.0, "Gaussian smoothing of the anomaly map in pixels.", 0.0, 32.0),
    )

    tiny_params = {"image_size": 64, "coreset_ratio": 0.2}
    # models trained before the cap existed had an uncapped bank (only fitting reads it)
    params_before_added = {"max_bank_size": 0}

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        self.backbone_layers = parse_layers(self.p.layers)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        """Stream each batch's patch features into the coreset selection: memory stays at one
        chunk of features plus the bank, whatever the number of images."""
        report = make_reporter(progress, "extract features", len(images))
        selector: StreamingCoreset | None = None
        grid = (0, 0)
        for feats in self.iter_feature_batches(images, cancel, report):
            emb = fuse_features(feats, local_kernel=3)
            grid = (int(emb.shape[2]), int(emb.shape[3]))
            if selector is None:
                selector = self._selector(len(images) * emb.shape[2] * emb.shape[3], progress, cancel)
            selector.add(emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]))
        assert selector is not None  # fit() refuses an empty image list
        self._set_module(self._new_module({"memory_bank": selector.finish()}))
        # where each bank entry came from (training image, grid cell): the evidence for a flagged spot
        set_bank_sources(self, bank_sources(selector.selected_indices, grid), grid)

    def bank_size(self, n_patches: int) -> int:
        """Memory-bank size for ``n_patches`` training patches: the coreset ratio, capped."""
        n_select = max(1, int(round(n_patches * self.p.coreset_ratio)))
        return min(n_select, self.p.max_bank_size) if self.p.max_bank_size > 0 else n_select

    def _selector(self, n_patches: int, progress: ProgressCallback | None,
                  cancel: CancelToken) -> StreamingCoreset:
        n_select = self.bank_size(n_patches)
        return StreamingCoreset(n_patches, n_select, self.p.projection_dim, self.p.seed, cancel,
                                make_reporter(progress, "coreset selection", n_select))

    # ----------------------------------------------------------------- evidence and updates
    def patch_embeddings(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Locally aware patch features [B, h, w, D] of ``images`` (what the bank holds)."""
        with torch.inference_mode():
            emb = fuse_features(self.extractor(self.preprocess(images)), local_kernel=3)
        return emb.permute(0, 2, 3, 1)

    def nearest_normal(self, image: np.ndarray, cell: tuple[int, int] | None) -> NearestPatch:
        """The bank entry nearest to the test patch at grid ``cell`` (row, col), or at the
        highest-scoring patch when ``cell`` is None."""
        emb = self.patch_embeddings([image])[0]
        h, w, d = emb.shape
        dist, idx = self.module.search(emb.reshape(-1, d), 1)
        patch_scores = dist[:, 0].reshape(h, w)
        if cell is None:
            flat = int(torch.argmax(patch_scores))
            cell = (flat // w, flat % w)
        r, c = cell
        entry = int(idx[r * w + c, 0])
        return NearestPatch((h, w), (r, c), entry, float(patch_scores[r, c]), patch_scores.cpu().numpy(),
                            *source_of(self, entry))

    def add_normal_images(self, images: Sequence[np.ndarray], first_index: int,
                          progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> int:
        """Append the patches of good ``images`` that the bank does not cover yet (see
        :func:`extend_coverage`); returns how many entries were added."""
        cancel = cancel or CancelToken()
        report = make_reporter(progress, "extract features", len(images))
        feats = []
        for start in range(0, len(images), self.p.batch_size):
            cancel.raise_if_cancelled()
            feats.append(self.patch_embeddings(images[start:start + self.p.batch_size]))
            report(min(start + self.p.batch_size, len(images)))
        emb = torch.cat(feats)
        n, h, w, d = emb.shape
        new = emb.reshape(-1, d)
        bank = self.module.memory_bank
        chosen = extend_coverage(bank, new, self.p.coreset_ratio, cancel)
        self._set_module(self._new_module({"memory_bank": torch.cat([bank, new[chosen].to(bank.device)])}))
        sources = bank_sources(chosen.cpu(), (h, w))
        sources["source_image"] += first_index
        append_bank_sources(self, sources, (h, w))
        return int(chosen.numel())

    def _new_module(self, tensors: dict[str, torch.Tensor], dense: bool = False) -> PatchCoreModel:
        return PatchCoreModel(self.extractor, tensors["memory_bank"].to(self.device), self.image_size,
                              self.p.num_neighbors, self.p.smoothing_sigma, dense=dense)

    def export_module(self) -> torch.nn.Module:
        """The same module with the dense (matrix-product) search, which ONNX can express."""
        return self._new_module({"memory_bank": self.module.memory_bank}, dense=True)
