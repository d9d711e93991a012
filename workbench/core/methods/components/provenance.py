"""Where each memory-bank entry came from, and how new good images extend a bank.

Evidence ("this patch is unlike any normal patch; the nearest one is in training image 12 at
x, y") needs, for every bank entry, the training image it was taken from and its cell on the
feature grid. Those are two small integer tensors (``source_image`` [M], ``source_cell``
[M, 2] = row, col) kept in ``model.aux_tensors`` and saved by the package next to the weights
(``aux_tensors.safetensors``), never in the inference module: the ONNX graph and the
scores do not change. The grid size goes into ``model.json`` under ``memory_bank``.

:func:`extend_coverage` is the incremental update's selection: greedy k-center on the new
patches only, starting from their distance to the existing bank and stopping once every new
patch lies within the bank's own coverage radius, so reviewed good images join the bank in
seconds without re-running the coreset over all training patches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.core.jobs import CancelToken
from workbench.core.methods.components.knn import NearestNeighbors



@dataclass
class NearestPatch:
    """The answer of a method's ``nearest_normal``: test cell -> nearest normal entry.

    ``grid`` is the feature grid (rows, cols) over the model's square input; ``cell`` the test
    patch's (row, col); ``entry`` the bank row; ``distance`` the test patch's distance to it (its
    unsmoothed patch score); ``patch_scores`` the whole grid of such distances;
    ``train_index`` / ``train_cell`` where the entry came from (None for an older package that
    did not record it)."""

    grid: tuple[int, int]
    cell: tuple[int, int]
    entry: int
    distance: float
    patch_scores: np.ndarray
    train_index: int | None
    train_cell: tuple[int, int] | None


def bank_sources(selected: torch.Tensor, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Source image and cell of rows ``selected`` of an image-major patch list over ``grid``."""
    h, w = grid
    flat = selected.long()
    image, rest = flat // (h * w), flat % (h * w)
    return {"source_image": image.int().contiguous(),
            "source_cell": torch.stack([rest // w, rest % w], dim=1).int().contiguous()}


def set_bank_sources(model: Any, sources: dict[str, torch.Tensor], grid: tuple[int, int]) -> None:
    model.aux_tensors = dict(sources)
    model.metadata["memory_bank"] = {"grid": [int(grid[0]), int(grid[1])]}


def append_bank_sources(model: Any, sources: dict[str, torch.Tensor], grid: tuple[int, int]) -> None:
    """Add the sources of appended bank rows. A bank without recorded sources (older package)
    gets -1 for its old rows, so the new rows are still traceable."""
    old = getattr(model, "aux_tensors", {}) or {}
    n_old = model.module.memory_bank.shape[0] - sources["source_image"].shape[0]
    if "source_image" not in old:
        old = {"source_image": torch.full((n_old,), -1, dtype=torch.int32),
               "source_cell": torch.full((n_old, 2), -1, dtype=torch.int32)}
    set_bank_sources(model, {k: torch.cat([old[k], sources[k]]) for k in ("source_image", "source_cell")}, grid)


def source_of(model: Any, entry: int) -> tuple[int | None, tuple[int, int] | None]:
    """(training image index, (row, col)) of bank row ``entry``; (None, None) when unknown."""
    sources = getattr(model, "aux_tensors", {}) or {}
    if "source_image" not in sources or entry >= sources["source_image"].shape[0]:
        return None, None
    index = int(sources["source_image"][entry])
    if index < 0:
        return None, None
    r, c = (int(v) for v in sources["source_cell"][entry])
    return index, (r, c)


def coverage_radius(bank: torch.Tensor) -> float:
    """The smallest distance between two bank entries: greedy k-center picks every entry at least
    the final coverage radius away from the earlier ones, so this is (about) that radius."""
    if bank.shape[0] < 2:
        return 0.0
    dist, _ = NearestNeighbors(bank.cpu()).search(bank.cpu(), 2)
    return float(dist[:, 1].min())


def extend_coverage(bank: torch.Tensor, new: torch.Tensor, ratio: float,
                    cancel: CancelToken | None = None) -> torch.Tensor:
    """Indices of rows of ``new`` [N, D] to append to ``bank`` [M, D].

    Greedy k-center over the new rows only, each new row starting at its distance to the bank:
    the farthest row is added until every new row is within the bank's coverage radius of
    the selection (all of them when the bank keeps every patch, ``ratio`` 1).
    """
    new = new.detach().float().cpu()
    if new.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long)
    if ratio >= 1.0:
        return torch.arange(new.shape[0])
    radius2 = coverage_radius(bank) ** 2
    dist, _ = NearestNeighbors(bank.detach().float().cpu()).search(new, 1)
    min_d2 = dist[:, 0].double() ** 2
    new64 = new.double()
    sq = (new64 ** 2).sum(1)
    chosen: list[int] = []
    while len(chosen) < new.shape[0]:
        j = int(torch.argmax(min_d2))
        if float(min_d2[j]) <= radius2:
            break
        chosen.append(j)
        d2 = sq - 2.0 * (new64 @ new64[j]) + sq[j]
        torch.minimum(min_d2, d2.clamp_min(0.0), out=min_d2)
        if cancel is not None and len(chosen) % 64 == 0:
            cancel.raise_if_cancelled()
    return torch.tensor(sorted(chosen), dtype=torch.long)
