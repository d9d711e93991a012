"""The shared training loop: learning happens, progress arrives, cancel and early stopping work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.core.jobs import CancelToken, Cancelled
from workbench.core.methods.components.training import ImageCache, train_loop

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def _images(n: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (20, 24, 3), dtype=np.uint8) for _ in range(n)]


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
    return net, torch.optim.Adam(net.parameters(), lr=1e-2)


def _run(net, opt, cache, **kw):
    kw.setdefault("cancel", CancelToken())
    return train_loop(lambda x: ((net(x) - x) ** 2).mean(), [net], opt, cache, mean=MEAN, std=STD,
                      device=torch.device("cpu"), batch_size=4, seed=0, **kw)


def test_loss_decreases_and_progress_reports_each_step():
    cache = ImageCache(_images(), 16, CancelToken())
    assert cache.data.shape == (12, 16, 16, 3)
    net, opt = _setup()
    events = []
    history = _run(net, opt, cache, epochs=15, progress=events.append)
    train_events = [e for e in events if e.stage == "train"]
    assert len(train_events) == 15 * 3 and train_events[-1].current == train_events[-1].total
    assert "loss" in train_events[0].metrics and train_events[0].message == "epoch 1/15"
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert not net.training


def test_same_seed_same_weights():
    cache = ImageCache(_images(), 16, CancelToken())
    nets = []
    for _ in range(2):
        net, opt = _setup()
        _run(net, opt, cache, epochs=3)
        nets.append(net)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(a, b)


def test_cancel_takes_effect_within_one_step():
    cache = ImageCache(_images(), 16, CancelToken())
    net, opt = _setup()
    token = CancelToken()
    steps = []

    def on_progress(event):
        steps.append(event.current)
        if event.current == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        _run(net, opt, cache, epochs=10, progress=on_progress, cancel=token)
    assert max(steps) == 2


def test_early_stopping_restores_best_epoch():
    cache = ImageCache(_images(20), 16, CancelToken())
    net, opt = _setup()
    for group in opt.param_groups:
        group["lr"] = 0.5  # too high on purpose: validation loss gets worse, training must stop
    history = _run(net, opt, cache, epochs=30, early_stopping=2)
    assert history.stopped_early and len(history.train_loss) < 30
    assert len(history.val_loss) - history.best_epoch == 2  # patience of 2 epochs after the best
    # The restored weights are the best epoch's: recomputing its validation loss matches.
    val_idx = np.random.default_rng(0).permutation(20)[:2]
    with torch.no_grad():
        x = cache.batch(val_idx, MEAN, STD, torch.device("cpu"))
        assert float(((net(x) - x) ** 2).mean()) == pytest.approx(min(history.val_loss), rel=1e-5)
