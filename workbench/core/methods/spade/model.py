"""SPADE (Cohen & Hoshen, "Sub-Image Anomaly Detection with Deep Pyramid Correspondences", 2020).

Two k-nearest-neighbour stages on pretrained features, no training:

1. Image level: each image is described by its globally pooled deepest-stage feature. The
   image score is the mean Euclidean distance to its ``k`` nearest good training images.
2. Pixel level ("deep pyramid correspondence"): the ``gallery_size`` nearest training images
   form the gallery; every position of the test feature pyramid (several stages, upsampled to
   one grid and concatenated) is scored by its mean distance to the ``pixel_k`` nearest
   positions anywhere in the gallery's feature maps. The map is upsampled and Gaussian
   smoothed (sigma 4, as in the paper).

Restricting the pixel search to similar images is what makes SPADE work on aligned objects
(a bolt hole is compared with bolt holes of parts in the same pose) and keeps it cheaper
than searching all training pixels.

Deviations, for a 2-core CPU and small data sets: the backbone is the embedded
EfficientNet-Lite0 (the paper uses a Wide-ResNet-50); pixel features are average-pooled to
a stride-8 grid (``grid_stride``; the paper uses stride 4, measured here 7x slower for the
same accuracy on the sample data); K defaults to 5 instead of 50 because the sample data
has only 36 training images. The image-level search uses faiss (:mod:`..knn`); the gallery
search is an exact dense distance per image in torch (a faiss index per test image would
cost more to build than it saves), and the exported graph does both densely.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.components.ops import map_and_deepest_layers
from workbench.core.methods.schema import Param
from workbench.core.methods.components.provenance import NearestPatch
from workbench.core.methods.spade.torch_model import DEEPEST_STAGE, SpadeFeatures, SpadeModel, squared_distances


class Spade(AnomalyModel):
    name = "spade"
    title = "SPADE"
    family = "Feature memory bank (kNN)"
    description = ("Finds the most similar good training images by k-nearest neighbours, then scores "
                   "every pixel by its distance to the closest features of those images. No training; "
                   "stores all training feature maps, so memory and time grow with the training set.")
    method_params = (
        Param("layers", "choice", "1,2,3", "Backbone stages concatenated for pixel matching (the "
              "'feature pyramid'). Finer stages localise small defects, coarser ones add context.",
              choices=("1,2", "2,3", "1,2,3")),
        Param("k", "int", 5, "Nearest training images averaged for the image score. Small k is "
              "sharper but noisier; the paper's 50 needs hundreds of training images.", 1, 100),
        Param("gallery_size", "int", 5, "Nearest training images whose feature maps form the pixel "
              "gallery. Larger tolerates more variation in pose, but is slower and can hide defects "
              "that look like some other part's normal region.", 1, 100),
        Param("pixel_k", "int", 1, "Nearest gallery positions averaged per pixel (the paper's kappa).",
              1, 50),
        Param("grid_stride", "choice", "8", "Stride of the pixel feature grid in input pixels: 4 is the "
              "paper's (finer maps, about 4-8x slower and 4x the stored features).",
              choices=("4", "8", "16")),
        Param("smoothing_sigma", "float", 4.0, "Gaussian smoothing of the anomaly map in pixels.", 0.0, 32.0),
    )

    tiny_params = {"image_size": 64, "k": 3, "gallery_size": 2}

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        self.map_layers, self.backbone_layers = map_and_deepest_layers(self.p.layers, "SPADE pixel layers", DEEPEST_STAGE)

    @property
    def grid(self) -> int:
        return max(1, self.image_size // int(self.p.grid_stride))

    def _features(self) -> SpadeFeatures:
        return SpadeFeatures(self.extractor, len(self.map_layers), self.grid)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        report = make_reporter(progress, "extract features", len(images))
        features = self._features()
        pooled, patches = [], []
        for start in range(0, len(images), self.p.batch_size):
            cancel.raise_if_cancelled()
            chunk = images[start:start + self.p.batch_size]
            with torch.inference_mode():
                g, p = features(self.preprocess(chunk))
            pooled.append(g)
            patches.append(p)
            report(start + len(chunk))
        self._set_module(self._new_module({"image_bank": torch.cat(pooled), "gallery_bank": torch.cat(patches)}))

    # ----------------------------------------------------------------- evidence and updates
    def nearest_normal(self, image: np.ndarray, cell: tuple[int, int] | None) -> NearestPatch:
        """The gallery position nearest to the test position ``cell`` (row, col), or to the
        highest-scoring one when ``cell`` is None. Gallery rows are training images in order,
        so the entry's source is its row and position."""
        m = self.module
        with torch.inference_mode():
            pooled, patches = self._features()(self.preprocess([image]))
            n_images = m.image_bank.shape[0]
            _, nearest = m._index(m.image_bank).search(pooled, min(max(self.p.k, self.p.gallery_size), n_images))
            gallery_idx = nearest[0, :min(self.p.gallery_size, n_images)]
            centre = m.gallery_bank.mean(dim=(0, 1))
            gallery = m.gallery_bank.index_select(0, gallery_idx) - centre  # [K, P, D]
            k, p, d = gallery.shape
            d2 = squared_distances(patches[0] - centre, gallery.reshape(k * p, d))  # [P, K*P]
            best_d2, best = d2.min(dim=1)
        g = self.grid
        patch_scores = best_d2.sqrt().reshape(g, g)
        if cell is None:
            flat = int(torch.argmax(patch_scores))
            cell = (flat // g, flat % g)
        at = int(best[cell[0] * g + cell[1]])
        train_index, position = int(gallery_idx[at // p]), at % p
        return NearestPatch((g, g), cell, train_index * p + position, float(patch_scores[cell]),
                            patch_scores.cpu().numpy(), train_index, (position // g, position % g))

    def add_normal_images(self, images: Sequence[np.ndarray], first_index: int,
                          progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> int:
        """Append the images' pooled and grid features to both banks (SPADE keeps every training
        image); ``first_index`` is where they start in the training file list (they are appended
        in order, so it must equal the current bank size). Returns the images added."""
        cancel = cancel or CancelToken()
        m = self.module
        if first_index != m.image_bank.shape[0]:
            raise ValueError(f"SPADE appends images after its {m.image_bank.shape[0]} training images, "
                             f"not at index {first_index}.")
        report = make_reporter(progress, "extract features", len(images))
        features = self._features()
        pooled, patches = [m.image_bank], [m.gallery_bank]
        for start in range(0, len(images), self.p.batch_size):
            cancel.raise_if_cancelled()
            with torch.inference_mode():
                g, p = features(self.preprocess(images[start:start + self.p.batch_size]))
            pooled.append(g)
            patches.append(p)
            report(min(start + self.p.batch_size, len(images)))
        self._set_module(self._new_module({"image_bank": torch.cat(pooled), "gallery_bank": torch.cat(patches)}))
        return len(images)

    def _new_module(self, tensors: dict[str, torch.Tensor], dense: bool = False) -> SpadeModel:
        return SpadeModel(self._features(), tensors["image_bank"].to(self.device),
                          tensors["gallery_bank"].to(self.device), self.p.k, self.p.gallery_size, self.p.pixel_k,
                          self.image_size, self.p.smoothing_sigma, dense=dense)

    def export_module(self) -> torch.nn.Module:
        """The same module with the dense image search, which ONNX can express."""
        m = self.module
        return self._new_module({"image_bank": m.image_bank, "gallery_bank": m.gallery_bank}, dense=True).eval()
