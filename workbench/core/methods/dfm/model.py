"""DFM (Ahuja et al., "Probabilistic Modeling of Deep Features for Out-of-Distribution and
Adversarial Detection", 2019), as used for anomaly detection by anomalib ("Deep Feature Modeling").

The idea: good images occupy a low-dimensional subspace of a pretrained network's feature
space. PCA on features of good images keeps the components that explain most of the variance
(97% by default); a test feature's *feature reconstruction error* (FRE, the squared distance
to that subspace) or its Gaussian negative log-likelihood inside the subspace measures how
abnormal it is. Training is one pass of feature extraction plus two small eigendecompositions.

Two PCA models, because one cannot serve both outputs well:

* image level (the paper): features globally average-pooled over the image, from the map's
  stages plus the deepest stage (which sees the whole image). Image score = FRE or NLL.
* patch level (the anomaly map): every position's locally pooled feature vector (3 x 3
  average, as PatchCore's "locally aware" patches), one PCA shared by all positions. The map
  is the per-position FRE on the feature map, upsampled and smoothed. A PCA fitted on the
  global vectors and applied per position (anomalib's reading of "unpooled") localises poorly
  (pixel AUROC about 0.8 on the sample data, against 0.98 for the patch PCA).

Deviations: the paper fits one Gaussian per class of a classifier; anomaly detection has one
class (good). The NLL is the Mahalanobis term ``sum z_i^2 / lambda_i`` in the kept subspace
(constants dropped; they do not change rankings). PCA uses float64 running moments and an
eigendecomposition of the covariance, so memory does not grow with the number of images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.components.ops import fuse_features, map_and_deepest_layers, upsample_maps
from workbench.core.methods.dfm.torch_model import DEEPEST_STAGE, DfmModel, pca_from_moments
from workbench.core.methods.schema import Param


class Dfm(AnomalyModel):
    name = "dfm"
    title = "DFM"
    family = "Feature distribution (PCA subspace)"
    description = ("Models good images as a low-dimensional PCA subspace of pretrained features and "
                   "scores the distance to it, per image and per position. Trains in seconds with "
                   "a tiny model; a strong, simple baseline.")
    method_params = (
        Param("layers", "choice", "2,3", "Backbone stages whose patch features give the anomaly map. "
              "Finer stages (1) localise small defects, coarser ones (3) add context.",
              choices=("1,2", "2,3", "1,2,3", "3")),
        Param("variance", "float", 0.97, "Fraction of the feature variance the kept PCA components "
              "explain. Higher keeps more components: normal variation is modelled more fully, but "
              "defects are also reconstructed better and stand out less.", 0.5, 0.9999),
        Param("image_score", "choice", "fre", "Image score: 'fre' = reconstruction error of the "
              "globally pooled features (the paper's default), 'nll' = Gaussian negative "
              "log-likelihood inside the PCA subspace, 'map_max' = the anomaly map's maximum "
              "(better for tiny defects that barely move the pooled features).",
              choices=("fre", "nll", "map_max")),
        Param("local_kernel", "choice", "3", "Patch features are averaged over this k x k neighbourhood "
              "before the patch PCA: larger is more robust to small shifts, smaller is sharper.",
              choices=("1", "3", "5")),
        Param("smoothing_sigma", "float", 4.0, "Gaussian smoothing of the anomaly map in pixels.", 0.0, 32.0),
    )

    tiny_params = {"image_size": 64}

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        self.map_layers, self.backbone_layers = map_and_deepest_layers(self.p.layers, "DFM map layers", DEEPEST_STAGE)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        self.aux_tensors = self._moments(images, progress, cancel)
        self._fit_from_moments()

    def _moments(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
                 cancel: CancelToken) -> dict[str, torch.Tensor]:
        """Float64 running moments of the patch and pooled features: all an update needs (they are
        kept in the package as auxiliary tensors, a few MB)."""
        report = make_reporter(progress, "extract features", len(images))
        k, n_map = int(self.p.local_kernel), len(self.map_layers)
        count, sum_x, sum_xx, pooled = 0, None, None, []
        for feats in self.iter_feature_batches(images, cancel, report):
            emb = fuse_features(feats[:n_map], local_kernel=k)
            x = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]).double()
            sum_x = x.sum(0) if sum_x is None else sum_x + x.sum(0)
            sum_xx = x.T @ x if sum_xx is None else sum_xx + x.T @ x
            count += x.shape[0]
            pooled.append(torch.cat([f.mean(dim=(2, 3)) for f in feats], dim=1).double())
        assert sum_x is not None and sum_xx is not None
        cancel.raise_if_cancelled()
        g = torch.cat(pooled)
        return {"patch.count": torch.tensor([count], dtype=torch.float64), "patch.sum": sum_x, "patch.sum_sq": sum_xx,
                "global.count": torch.tensor([len(g)], dtype=torch.float64), "global.sum": g.sum(0),
                "global.sum_sq": g.T @ g}

    def _fit_from_moments(self) -> None:
        mo = self.aux_tensors
        p_mean, p_comp, p_var = pca_from_moments(int(mo["patch.count"][0]), mo["patch.sum"], mo["patch.sum_sq"],
                                                 self.p.variance)
        g_mean, g_comp, g_var = pca_from_moments(int(mo["global.count"][0]), mo["global.sum"], mo["global.sum_sq"],
                                                 self.p.variance)
        self._set_module(self._new_module({
            "patch.mean": p_mean, "patch.components": p_comp, "patch.variances": p_var,
            "global.mean": g_mean, "global.components": g_comp, "global.variances": g_var}))
        self.metadata["pca_components"] = {"patch": int(p_comp.shape[0]), "global": int(g_comp.shape[0])}

    def update_statistics(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None,
                          cancel: CancelToken | None = None) -> None:
        """Add good ``images``: their moments are added to the stored ones and both PCA models
        recomputed, exactly as a fit on old + new images (same sums, same eigendecomposition)."""
        if "patch.sum_sq" not in self.aux_tensors:
            raise ValueError("This DFM package was saved before the workbench kept its feature moments, so it "
                             "cannot be updated; retrain it with the new images.")
        new = self._moments(images, progress, cancel or CancelToken())
        self.aux_tensors = {k: self.aux_tensors[k].to(v.device, v.dtype) + v for k, v in new.items()}
        self._fit_from_moments()

    def stage_contributions(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The patch reconstruction error split by backbone stage: the squared residual of each
        stage's channels. Maps [S, S] (not smoothed) that sum to the unsmoothed error map."""
        m = self.module
        patch = m._modules["patch"]
        with torch.inference_mode():
            feats = self.extractor(self.preprocess([image]))
            emb = fuse_features(feats[:len(self.map_layers)], local_kernel=int(self.p.local_kernel))
            centred = emb[0].permute(1, 2, 0) - patch.mean
            residual = centred - (centred @ patch.components.T) @ patch.components
            squared = residual * residual  # [h, w, D]
            out, start = {}, 0
            for layer, channels in zip(self.map_layers, self.extractor.channels):
                part = squared[..., start:start + channels].sum(-1).unsqueeze(0)
                out[f"stage {layer}"] = upsample_maps(part, self.image_size)[0].cpu().numpy()
                start += channels
        return out

    def _new_module(self, tensors: dict[str, torch.Tensor]) -> DfmModel:
        return DfmModel(self.extractor, len(self.map_layers), int(self.p.local_kernel), self.image_size,
                        self.p.smoothing_sigma, self.p.image_score, tensors)
