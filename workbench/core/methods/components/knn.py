"""Exact nearest-neighbour search over a memory bank: faiss on CPU, chunked torch on CUDA.

faiss-cpu's flat L2 index is several times faster than ``torch.cdist`` on CPU; on CUDA the
chunked matrix product is fast and keeps memory bounded (field notes: GPU OOM in NN search).
"""

from __future__ import annotations

import faiss
import numpy as np
import torch


class NearestNeighbors:
    """k-NN search returning Euclidean (not squared) distances."""

    def __init__(self, bank: torch.Tensor, chunk_rows: int = 4096) -> None:
        self.bank = bank.float().contiguous()
        self.chunk_rows = chunk_rows
        self._index: faiss.Index | None = None
        if self.bank.device.type == "cpu":
            self._index = faiss.IndexFlatL2(self.bank.shape[1])
            self._index.add(np.ascontiguousarray(self.bank.numpy(), dtype=np.float32))

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = min(k, self.bank.shape[0])
        if self._index is not None:
            q = np.ascontiguousarray(queries.detach().float().cpu().numpy(), dtype=np.float32)
            dist2, idx = self._index.search(q, k)
            dist = torch.from_numpy(np.sqrt(np.maximum(dist2, 0.0)))
            return dist.to(queries.device), torch.from_numpy(idx).to(queries.device)
        return self._search_torch(queries.float(), k)

    def _search_torch(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        bank_sq = (self.bank ** 2).sum(1)
        dists, idxs = [], []
        for start in range(0, queries.shape[0], self.chunk_rows):
            q = queries[start:start + self.chunk_rows]
            d2 = (q ** 2).sum(1, keepdim=True) - 2.0 * q @ self.bank.T + bank_sq
            d, i = torch.topk(d2, k, dim=1, largest=False)
            dists.append(d.clamp_min(0).sqrt())
            idxs.append(i)
        return torch.cat(dists), torch.cat(idxs)


class BankIndex:
    """The :class:`NearestNeighbors` of a bank buffer, built on first use and rebuilt whenever the
    buffer is replaced, refilled (loading a package) or moved to another device."""

    def __init__(self) -> None:
        self._nn: NearestNeighbors | None = None
        self._key: tuple | None = None

    def __call__(self, bank: torch.Tensor) -> NearestNeighbors:
        key = (bank.data_ptr(), bank.device, bank._version, tuple(bank.shape))
        if self._nn is None or key != self._key:
            self._nn, self._key = NearestNeighbors(bank), key
        return self._nn
