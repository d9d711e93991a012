"""SPADE inference as one module: backbone -> pooled image feature and pixel features on the
grid -> image kNN over the image bank and per-position kNN over the nearest images' feature maps.

One module, one switch: ``dense=False`` (predict) finds the nearest training images with
:class:`~workbench.core.methods.components.knn.NearestNeighbors` (faiss on CPU); ``dense=True``
(the ONNX graph) computes those distances by matrix product. The gallery search is dense in both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.methods.components.inference import InferenceModule
from workbench.core.methods.components.knn import BankIndex
from workbench.core.methods.components.ops import fuse_features, gaussian_blur, upsample_maps

DEEPEST_STAGE = 4  # stride-32 stage of the 5-stage timm feature pyramids (EfficientNet, ResNet)


def squared_distances(queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """||q - b||^2 for queries [..., M, D] and bank [..., N, D] -> [..., M, N] (clamped at 0)."""
    d2 = (queries * queries).sum(-1, keepdim=True) - 2.0 * queries @ bank.transpose(-1, -2) \
        + (bank * bank).sum(-1).unsqueeze(-2)
    return d2.clamp_min(0.0)


def gallery_maps(patches: torch.Tensor, gallery_bank: torch.Tensor, neighbours: torch.Tensor,
                 pixel_k: int, centre: torch.Tensor | None = None) -> torch.Tensor:
    """Per test position, the mean distance to its ``pixel_k`` nearest gallery positions.

    ``patches`` [B, P, D] test features; ``gallery_bank`` [N, P, D] training feature maps;
    ``neighbours`` [B, K] indices of each test image's gallery images. Returns [B, P].
    ``centre`` [D] (the bank's mean) is subtracted from both first: distances do not change,
    but the float32 cancellation in ``|q|^2 - 2 q.b + |b|^2`` shrinks with the norms.
    """
    b, p, d = patches.shape
    gallery = gallery_bank.index_select(0, neighbours.reshape(-1)).reshape(b, -1, d)  # [B, K*P, D]
    if centre is not None:
        patches, gallery = patches - centre, gallery - centre
    d2 = squared_distances(patches, gallery)
    nearest = torch.topk(d2, min(pixel_k, gallery.shape[1]), dim=-1, largest=False).values
    return nearest.sqrt().mean(-1)


class SpadeFeatures(nn.Module):
    """Backbone -> (global image features [B, C], pixel features [B, P, D] on the grid)."""

    def __init__(self, extractor: nn.Module, map_stages: int, grid: int) -> None:
        super().__init__()
        self.extractor, self.map_stages, self.grid = extractor, map_stages, grid

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.extractor(x)
        emb = fuse_features(feats[:self.map_stages])
        if emb.shape[-1] != self.grid:
            emb = F.adaptive_avg_pool2d(emb, self.grid)
        return feats[-1].mean(dim=(2, 3)), emb.flatten(2).transpose(1, 2).contiguous()


class SpadeModel(InferenceModule):
    frozen = ("features",)

    def __init__(self, features: SpadeFeatures, image_bank: torch.Tensor, gallery_bank: torch.Tensor,
                 k: int, gallery_size: int, pixel_k: int, image_size: int, sigma: float,
                 dense: bool = False) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("image_bank", image_bank.float().contiguous())  # [N, C]
        self.register_buffer("gallery_bank", gallery_bank.float().contiguous())  # [N, P, D]
        self.k, self.gallery_size = k, gallery_size
        self.pixel_k, self.image_size, self.sigma, self.dense = pixel_k, image_size, sigma, dense
        self._index = BankIndex()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, patches = self.features(x)
        n_images = self.image_bank.shape[0]
        if self.dense:
            k, gallery_size = min(self.k, n_images), min(self.gallery_size, n_images)
            d2 = squared_distances(pooled, self.image_bank)
            nearest_d2, nearest = torch.topk(d2, max(k, gallery_size), dim=1, largest=False)
            scores = nearest_d2[:, :k].sqrt().mean(1)
        else:
            k, gallery_size = self.k, self.gallery_size
            dist, nearest = self._index(self.image_bank).search(pooled, max(k, gallery_size))
            scores = dist[:, :k].mean(1)
        maps = gallery_maps(patches, self.gallery_bank, nearest[:, :gallery_size], self.pixel_k,
                            self.gallery_bank.mean(dim=(0, 1)))
        g = self.features.grid
        maps = gaussian_blur(upsample_maps(maps.reshape(-1, g, g), self.image_size), self.sigma)
        return scores, maps
