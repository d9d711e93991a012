"""PatchCore inference as one module: backbone, locally aware patch embedding, nearest-neighbour
distance of every patch to the memory bank (a buffer), and the re-weighted image score.

One module, one switch: ``dense=False`` (predict) searches the bank with
:class:`~workbench.core.methods.components.knn.NearestNeighbors` (faiss on CPU, several times
faster than a matrix product there; chunked torch on CUDA); ``dense=True`` (the ONNX graph)
computes the same distances as ``||q||^2 - 2 q.b + ||b||^2`` followed by a min, with each bank
patch's k nearest bank neighbours (for the re-weighting) precomputed once.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.core.methods.components.inference import InferenceModule
from workbench.core.methods.components.knn import BankIndex
from workbench.core.methods.components.ops import fuse_features, gaussian_blur, upsample_maps


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


class PatchCoreModel(InferenceModule):
    frozen = ("extractor",)

    def __init__(self, extractor: nn.Module, memory_bank: torch.Tensor, image_size: int, num_neighbors: int,
                 sigma: float, dense: bool = False) -> None:
        super().__init__()
        self.extractor = extractor
        self.register_buffer("memory_bank", memory_bank.detach().float().contiguous())
        self.image_size, self.num_neighbors, self.sigma, self.dense = image_size, num_neighbors, sigma, dense
        self._index = BankIndex()
        if dense:
            support = self.search(self.memory_bank, num_neighbors)[1] if num_neighbors > 1 else None
            self.register_buffer("bank_sq", (self.memory_bank ** 2).sum(1), persistent=False)
            self.register_buffer("support", support if support is not None else torch.zeros(0, dtype=torch.long),
                                 persistent=False)

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact k nearest bank patches of ``queries`` [N, D]: (distances, indices)."""
        return self._index(self.memory_bank).search(queries, k)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = fuse_features(self.extractor(x), local_kernel=3)
        b, d, h, w = emb.shape
        if self.dense:
            patches = emb.permute(0, 2, 3, 1).reshape(b, h * w, d)
            dist2 = (patches ** 2).sum(-1, keepdim=True) - 2.0 * patches @ self.memory_bank.T + self.bank_sq
            min_dist2, nearest = dist2.min(dim=-1)
            patch_scores = min_dist2.clamp_min(0.0).sqrt()
            if self.num_neighbors > 1:
                worst_nearest = nearest.gather(1, patch_scores.argmax(dim=1, keepdim=True)).squeeze(1)
                scores = reweighted_score(patch_scores, patches, self.memory_bank, self.support[worst_nearest])
            else:
                scores = patch_scores.amax(dim=1)
        else:
            flat = emb.permute(0, 2, 3, 1).reshape(-1, d)
            dist, idx = self.search(flat, 1)
            patch_scores = dist[:, 0].reshape(b, h * w)
            nearest = idx[:, 0].reshape(b, h * w)
            scores = self._searched_score(patch_scores, nearest, flat.reshape(b, h * w, d))
        maps = gaussian_blur(upsample_maps(patch_scores.reshape(b, h, w), self.image_size), self.sigma)
        return scores, maps

    def _searched_score(self, patch_scores: torch.Tensor, nearest: torch.Tensor,
                        patches: torch.Tensor) -> torch.Tensor:
        if self.num_neighbors <= 1:
            return patch_scores.amax(dim=1)
        rows = torch.arange(patch_scores.shape[0], device=patch_scores.device)
        _, support = self.search(self.memory_bank[nearest[rows, patch_scores.argmax(dim=1)]], self.num_neighbors)
        return reweighted_score(patch_scores, patches, self.memory_bank, support)
