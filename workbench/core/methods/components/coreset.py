"""Greedy k-center coreset selection with a random projection (PatchCore, Roth et al. 2022).

Memory is O(N) beyond the features themselves: the running minimum distance of every
point to the selected set is updated with one batched pass per selected point, so there
is never an N x N distance matrix. Time is O(N * k * projection_dim).
"""

from __future__ import annotations

import torch

from workbench.core.jobs import CancelToken


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
    if 0 < projection_dim < points.shape[1]:
        proj = torch.randn(points.shape[1], projection_dim, generator=generator) / projection_dim**0.5
        points = points @ proj.to(points.device)
    sq_norms = (points ** 2).sum(dim=1)
    selected = torch.empty(n_select, dtype=torch.long, device=points.device)
    current = int(torch.randint(n_total, (1,), generator=generator))
    min_dist = torch.full((n_total,), float("inf"), device=points.device)
    step_report = max(1, n_select // 100)
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
                report(i + 1)
    if report is not None:
        report(n_select)
    return selected
