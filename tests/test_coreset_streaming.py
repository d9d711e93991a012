"""Streaming coreset selection (bounded memory, time linear in the number of training images),
PatchCore's bank-size cap, and the thread settings that keep fitting usable on a busy machine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.core.methods.components import coreset
from workbench.core.methods.components.coreset import StreamingCoreset, greedy_coreset
from workbench.core.threads import WAIT_POLICY_VARIABLE, prefer_passive_waiting, single_thread


def _points(n: int = 6000, seed: int = 0) -> torch.Tensor:
    """Features with low intrinsic dimension, like backbone patch features."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g) @ torch.randn(4, 48, generator=g)


def _radius(points: torch.Tensor, bank: torch.Tensor) -> float:
    return float(torch.cdist(points, bank).min(1).values.max())


def _stream(points: torch.Tensor, selector: StreamingCoreset, batch: int = 500) -> torch.Tensor:
    for start in range(0, points.shape[0], batch):
        selector.add(points[start:start + batch])
    return selector.finish()


def test_small_sets_select_exactly_as_the_one_shot_greedy():
    points = _points(3000)
    bank = _stream(points, StreamingCoreset(3000, 150, projection_dim=16, seed=3))
    assert torch.equal(bank, points[greedy_coreset(points, 150, projection_dim=16, seed=3)])


def test_large_sets_stream_in_bounded_chunks_and_still_cover():
    points = _points(6000)
    selector = StreamingCoreset(6000, 200, projection_dim=16, seed=0, exact_rows=1000, chunk_rows=1000)
    bank = _stream(points, selector)
    assert bank.shape == (200, 48)
    # never more than one chunk plus one incoming batch held before selection
    assert selector.peak_rows_held < 1000 + 500
    # every selected row is a training row, none twice
    rows = {tuple(r) for r in points.numpy().round(5).tolist()}
    assert all(tuple(r) in rows for r in bank.numpy().round(5).tolist())
    assert len({tuple(r) for r in bank.numpy().round(5).tolist()}) == 200
    # coverage close to the exact greedy's, far better than a random subset of the same size
    exact = _radius(points, points[greedy_coreset(points, 200, projection_dim=16)])
    random = _radius(points, points[torch.randperm(6000, generator=torch.Generator().manual_seed(0))[:200]])
    streamed = _radius(points, bank)
    assert streamed < 1.35 * exact
    assert streamed < 0.8 * random


def test_streamed_selection_is_deterministic():
    points = _points(4000, seed=5)
    a = _stream(points, StreamingCoreset(4000, 120, seed=7, exact_rows=500, chunk_rows=700))
    b = _stream(points, StreamingCoreset(4000, 120, seed=7, exact_rows=500, chunk_rows=700))
    assert torch.equal(a, b)


def test_streamed_selection_reports_progress_and_cancels():
    from workbench.core.jobs import CancelToken, Cancelled

    seen: list[int] = []
    bank = _stream(_points(3000), StreamingCoreset(3000, 90, exact_rows=100, chunk_rows=1000, report=seen.append))
    assert bank.shape[0] == 90 and seen[-1] == 90 and seen == sorted(seen)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        _stream(_points(3000), StreamingCoreset(3000, 90, exact_rows=100, chunk_rows=1000, cancel=token))


def test_patchcore_bank_stops_growing_at_the_cap(tiny_images, monkeypatch):
    from workbench.core.methods import create_method

    images = tiny_images["train"]
    capped = create_method("patchcore", device="cpu", image_size=64, max_bank_size=40).fit(images)
    assert capped.module.memory_bank.shape[0] == 40
    ratio = create_method("patchcore", device="cpu", image_size=64, coreset_ratio=0.05, max_bank_size=0)
    assert ratio.bank_size(100_000) == 5000 and capped.bank_size(100_000) == 40
    # the streamed path (forced here by small chunk limits) fits and scores like a PatchCore
    monkeypatch.setattr(coreset, "EXACT_ROWS", 64)
    monkeypatch.setattr(coreset, "CHUNK_ROWS", 100)
    streamed = create_method("patchcore", device="cpu", image_size=64, coreset_ratio=0.2).fit(images)
    n_rows = len(images) * 8 * 8
    assert streamed.module.memory_bank.shape[0] == round(0.2 * n_rows)
    scores, maps = streamed.predict(tiny_images["bad"][:2])
    assert np.isfinite(scores).all() and maps.shape == (2, 64, 64)


def test_old_patchcore_packages_read_as_uncapped():
    from workbench.core.methods.patchcore import PatchCore

    assert PatchCore.params_from_package({"coreset_ratio": 0.1})["max_bank_size"] == 0


def test_passive_waiting_is_asked_for_but_never_overrides_the_user():
    env: dict[str, str] = {}
    assert prefer_passive_waiting(env) and env[WAIT_POLICY_VARIABLE] == "PASSIVE"
    env = {WAIT_POLICY_VARIABLE: "ACTIVE"}
    assert not prefer_passive_waiting(env) and env[WAIT_POLICY_VARIABLE] == "ACTIVE"


def test_single_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with single_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), single_thread():
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
