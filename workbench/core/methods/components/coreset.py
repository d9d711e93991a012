"""Greedy k-center coreset selection with a random projection (PatchCore, Roth et al. 2022).

Memory is O(N) beyond the features themselves: the running minimum distance of every
point to the selected set is updated with one batched pass per selected point, so there
is never an N x N distance matrix. Time is O(N * k * projection_dim).

:class:`StreamingCoreset` bounds both for large training sets: features arrive batch by batch
and, past ``exact_rows``, are selected chunk by chunk (each chunk's greedy starts from its
distances to everything selected before, found with one faiss search), so the features are
never all held at once and the time is O(N * k) with k capped by the caller: linear in N.

The greedy loop is thousands of small steps; it runs on one thread (:func:`single_thread`):
a second thread saves little on a memory-bound matrix-vector product and, on a busy machine,
every step would wait for it. Selection does not depend on the thread count.
"""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np
import torch

from workbench.core.jobs import CancelToken
from workbench.core.threads import single_thread

# Up to this many feature rows (64 images of 256 px at PatchCore's stride 8) the whole set is
# selected at once, exactly as before streaming existed; larger sets go chunk by chunk.
EXACT_ROWS = 65536
# Rows per chunk of the streamed selection: small enough that the projected chunk (8 MB)
# stays in the CPU cache during its greedy steps.
CHUNK_ROWS = 16384


def _projection(dim: int, projection_dim: int, generator: torch.Generator) -> torch.Tensor | None:
    """The Gaussian random projection [dim, projection_dim], or None when it would not shrink."""
    if 0 < projection_dim < dim:
        return torch.randn(dim, projection_dim, generator=generator) / projection_dim**0.5
    return None


def _greedy(points: torch.Tensor, n_select: int, min_dist: torch.Tensor, current: int,
            cancel: CancelToken | None, report: Callable[[int], None] | None, done: int = 0) -> torch.Tensor:
    """Greedy farthest-point steps on ``points`` [N, d] from ``current``; ``min_dist`` [N] holds
    each point's squared distance to what is selected already (inf for nothing) and is updated
    in place. Returns the ``n_select`` chosen row indices."""
    sq_norms = (points ** 2).sum(dim=1)
    selected = torch.empty(n_select, dtype=torch.long, device=points.device)
    step_report = max(1, n_select // 100)
    with single_thread():
        for i in range(n_select):
            selected[i] = current
            # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2: one mat-vec, no N x D temporary.
            dist = sq_norms - 2.0 * (points @ points[current]) + sq_norms[current]
            torch.minimum(min_dist, dist, out=min_dist)
            current = int(torch.argmax(min_dist))
            if i % step_report == 0:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                if report is not None:
                    report(done + i + 1)
    return selected


def greedy_coreset(features: torch.Tensor, n_select: int, projection_dim: int = 128, seed: int = 0,
                   cancel: CancelToken | None = None, report=None) -> torch.Tensor:
    """Indices of ``n_select`` rows of ``features`` [N, D] that cover the set greedily.

    Starts from a seeded random point; each step adds the point farthest from the current
    selection. A Gaussian random projection to ``projection_dim`` keeps distances roughly
    (Johnson-Lindenstrauss) while making each step cheaper.
    """
    n_total = features.shape[0]
    if n_select >= n_total:
        return torch.arange(n_total, device=features.device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    points = features.float()
    proj = _projection(points.shape[1], projection_dim, generator)
    if proj is not None:
        points = points @ proj.to(points.device)
    current = int(torch.randint(n_total, (1,), generator=generator))
    min_dist = torch.full((n_total,), float("inf"), device=points.device)
    selected = _greedy(points, n_select, min_dist, current, cancel, report)
    if report is not None:
        report(n_select)
    return selected


class StreamingCoreset:
    """Greedy coreset of a stream of feature rows, with bounded memory.

    ``total_rows`` (how many rows :meth:`add` will receive) and ``n_select`` are known up front.
    Up to ``exact_rows`` rows the stream is collected and :func:`greedy_coreset` selects from
    all of it (the same result as before streaming). Beyond that, rows are cut into chunks of
    ``chunk_rows``; each chunk gets its share of ``n_select`` (proportional to its rows) and
    continues the greedy selection from its points' distances to every row chosen so far, so a
    chunk that repeats earlier material adds only its farthest points. Held at once: one chunk
    plus the selection. An approximation of the global greedy (a chunk cannot see later ones),
    measured in ``benchmarks/fit_scaling.py``.
    """

    def __init__(self, total_rows: int, n_select: int, projection_dim: int = 128, seed: int = 0,
                 cancel: CancelToken | None = None, report: Callable[[int], None] | None = None,
                 exact_rows: int | None = None, chunk_rows: int | None = None) -> None:
        self.total_rows, self.n_select = total_rows, min(n_select, total_rows)
        self.projection_dim, self.seed, self.cancel, self.report = projection_dim, seed, cancel, report
        self.exact = total_rows <= (EXACT_ROWS if exact_rows is None else exact_rows)
        self.chunk_rows = CHUNK_ROWS if chunk_rows is None else chunk_rows
        self.peak_rows_held = 0
        self._pending: list[torch.Tensor] = []
        self._pending_rows = 0
        self._seen = 0
        self._chosen: list[torch.Tensor] = []
        self._chosen_rows: list[torch.Tensor] = []  # stream row numbers of the chosen rows
        self._n_chosen = 0
        #: after :meth:`finish`: each selected row's number in the stream (0-based, in order of
        #: :meth:`add`), so a caller can say which image and position every bank entry came from
        self.selected_indices = torch.empty(0, dtype=torch.long)
        self._generator = torch.Generator(device="cpu").manual_seed(seed)
        self._proj: torch.Tensor | None = None
        self._index: faiss.Index | None = None

    @property
    def rows_held(self) -> int:
        """Feature rows held now, waiting for selection (the memory bound of the stream)."""
        return self._pending_rows

    def add(self, rows: torch.Tensor) -> None:
        """Feed the next feature rows [n, D]. The exact path selects on their device; streamed
        chunks are selected on the CPU (faiss)."""
        self._pending.append(rows.detach())
        self._pending_rows += rows.shape[0]
        self.peak_rows_held = max(self.peak_rows_held, self._pending_rows)
        if not self.exact:
            while self._pending_rows >= self.chunk_rows:
                self._select_chunk(self._take(self.chunk_rows))

    def finish(self) -> torch.Tensor:
        """The selected rows [k, D] in the original feature space."""
        if self.exact:
            bank = self._take(self._pending_rows)
            if bank.shape[0] == 0:
                raise ValueError("no feature rows were added to the coreset selection")
            selected = greedy_coreset(bank, max(1, min(self.n_select, bank.shape[0])), self.projection_dim,
                                      self.seed, self.cancel, self.report)
            self.selected_indices = selected.detach().cpu().long()
            return bank[selected].contiguous()
        if self._pending_rows:
            self._select_chunk(self._take(self._pending_rows))
        if not self._chosen:
            raise ValueError("no feature rows were added to the coreset selection")
        if self.report is not None:
            self.report(self._n_chosen)
        self.selected_indices = torch.cat(self._chosen_rows)
        return torch.cat(self._chosen).contiguous()

    def _take(self, n: int) -> torch.Tensor:
        """The first ``n`` pending rows as one tensor (the rest stay pending)."""
        if not self._pending:
            return torch.empty(0, 0)
        rows = torch.cat(self._pending) if len(self._pending) > 1 else self._pending[0]
        taken, rest = rows[:n], rows[n:]
        self._pending = [rest] if rest.shape[0] else []
        self._pending_rows = rest.shape[0]
        return taken

    def _select_chunk(self, chunk: torch.Tensor) -> None:
        chunk = chunk.float().cpu()
        if self._proj is None:
            self._proj = _projection(chunk.shape[1], self.projection_dim, self._generator)
        points = chunk @ self._proj if self._proj is not None else chunk
        offset = self._seen
        self._seen += chunk.shape[0]
        target = round(self.n_select * min(1.0, self._seen / self.total_rows))
        quota = min(chunk.shape[0], max(0, target - self._n_chosen))
        if self._seen >= self.total_rows:  # the last chunk makes up any rounding shortfall
            quota = min(chunk.shape[0], max(quota, self.n_select - self._n_chosen))
        if quota == 0:
            return
        points = points.contiguous()
        if self._index is None:
            min_dist = torch.full((points.shape[0],), float("inf"))
            current = int(torch.randint(points.shape[0], (1,), generator=self._generator))
        else:
            dist2, _ = self._index.search(points.numpy(), 1)
            min_dist = torch.from_numpy(np.ascontiguousarray(dist2[:, 0])).clamp_min_(0.0)
            current = int(torch.argmax(min_dist))
        selected = _greedy(points, quota, min_dist, current, self.cancel, self.report, done=self._n_chosen)
        if self._index is None:
            self._index = faiss.IndexFlatL2(points.shape[1])
        self._index.add(np.ascontiguousarray(points[selected].numpy()))
        self._chosen.append(chunk[selected].clone())
        self._chosen_rows.append(torch.as_tensor(selected, dtype=torch.long).cpu() + offset)
        self._n_chosen += quota
