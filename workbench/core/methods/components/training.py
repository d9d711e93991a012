"""The shared gradient-descent loop of every trainable method (STFPM, RD4AD, flows, DRAEM, ...).

Methods supply a ``step_loss(batch) -> loss`` function and their trainable parameters; this
loop owns what must behave the same everywhere: seeded shuffling, device placement,
progress per step (epoch, step, loss), cancellation within one step, optional early
stopping on a held-back slice of the good images (restoring the best weights), and
deterministic results for a given seed.

Training images are resized once and cached as uint8 (not float), so memory stays at
``N * size * size * 3`` bytes and each epoch costs no decoding.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.methods.images import resize_square
from workbench.core.methods.schema import Param

TRAINING_PARAMS: tuple[Param, ...] = (
    Param("epochs", "int", 20, "Passes over the good training images. More learns finer detail "
          "but takes longer; early stopping can end training sooner.", 1, 1000),
    Param("learning_rate", "float", 1e-3, "Optimiser step size.", 1e-6, 1.0),
    Param("early_stopping", "int", 0, "Stop after this many epochs without improvement of the loss "
          "on held-back good images (0 = off, train all epochs).", 0, 100),
)


def train_method(model: Any, step_loss: Callable[[Any], torch.Tensor], modules: Iterable[nn.Module],
                 optimizer: torch.optim.Optimizer, cache: Any, cancel: CancelToken,
                 progress: ProgressCallback | None, **overrides: Any) -> "TrainingHistory":
    """:func:`train_loop` with a method's own settings: its normalisation, device and the
    ``epochs`` / ``batch_size`` / ``seed`` / ``early_stopping`` parameters (``overrides`` win)."""
    mean, std = model.normalization
    p = model.p
    settings: dict[str, Any] = dict(mean=mean, std=std, device=model.device, epochs=p.epochs,
                                    batch_size=p.batch_size, seed=p.seed, early_stopping=p.early_stopping)
    return train_loop(step_loss, modules, optimizer, cache, cancel=cancel, progress=progress,
                      **{**settings, **overrides})


@dataclass
class TrainingHistory:
    """Loss per epoch (train and, with early stopping, validation) and where training stopped."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False

    def as_metadata(self) -> dict[str, Any]:
        """What a model records about its training (``metadata["training_history"]``)."""
        return {"train_loss": self.train_loss, "val_loss": self.val_loss, "best_epoch": self.best_epoch}


class ImageCache:
    """Training images resized once to ``size`` and kept as uint8 NHWC."""

    def __init__(self, images: Sequence[np.ndarray], size: int, cancel: CancelToken,
                 progress: ProgressCallback | None = None) -> None:
        report = make_reporter(progress, "load images", len(images))
        data = np.empty((len(images), size, size, 3), np.uint8)
        for i in range(len(images)):
            cancel.raise_if_cancelled()
            data[i] = resize_square(images[i], size)
            report(i + 1)
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, index: np.ndarray, mean: Sequence[float], std: Sequence[float],
              device: torch.device) -> torch.Tensor:
        return normalised_batch(self.data[index], mean, std, device)


def normalised_batch(images: np.ndarray, mean: Sequence[float], std: Sequence[float],
                     device: torch.device) -> torch.Tensor:
    """uint8 NHWC images -> float NCHW tensor on ``device``, normalised with ``mean`` / ``std``."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return (x - m) / s


def train_loop(
    step_loss: Callable[[torch.Tensor], torch.Tensor],
    modules: Iterable[nn.Module],
    optimizer: torch.optim.Optimizer,
    cache: ImageCache,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
    epochs: int,
    batch_size: int,
    seed: int,
    cancel: CancelToken,
    progress: ProgressCallback | None = None,
    early_stopping: int = 0,
    val_fraction: float = 0.1,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> TrainingHistory:
    """Run ``epochs`` epochs of ``loss = step_loss(batch); loss.backward(); optimizer.step()``.

    ``modules`` are switched to train mode for steps and eval mode for validation; with
    ``early_stopping`` > 0 a seeded ``val_fraction`` of the images is held back, and the
    weights of the best validation epoch are restored at the end.
    """
    modules = list(modules)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(cache))
    n_val = int(round(len(cache) * val_fraction)) if early_stopping > 0 and len(cache) >= 10 else 0
    val_idx, train_idx = order[:n_val], order[n_val:]
    steps_per_epoch = max(1, math.ceil(len(train_idx) / batch_size))
    total = epochs * steps_per_epoch
    report = make_reporter(progress, "train", total)
    history = TrainingHistory()
    best_state, best_val, since_best = None, math.inf, 0
    step = 0
    for epoch in range(1, epochs + 1):
        _set_mode(modules, True)
        perm = rng.permutation(train_idx)
        epoch_losses = []
        for start in range(0, len(perm), batch_size):
            cancel.raise_if_cancelled()
            x = cache.batch(perm[start:start + batch_size], mean, std, device)
            loss = step_loss(x)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"Training diverged at epoch {epoch} (loss {float(loss)}). Lower the learning rate.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            epoch_losses.append(float(loss.detach()))
            report(step, f"epoch {epoch}/{epochs}", loss=epoch_losses[-1], epoch=epoch)
        if scheduler is not None:
            scheduler.step()
        history.train_loss.append(float(np.mean(epoch_losses)))
        if n_val:
            val = _validation_loss(step_loss, modules, cache, val_idx, mean, std, device, batch_size, cancel)
            history.val_loss.append(val)
            report(step, f"epoch {epoch}/{epochs}: validation loss {val:.4g}", loss=epoch_losses[-1],
                   val_loss=val, epoch=epoch)
            if val < best_val:
                best_val, since_best, history.best_epoch = val, 0, epoch
                best_state = [copy.deepcopy(m.state_dict()) for m in modules]
            else:
                since_best += 1
                if since_best >= early_stopping:
                    history.stopped_early = True
                    break
    if best_state is not None:
        for module, state in zip(modules, best_state):
            module.load_state_dict(state)
    else:
        history.best_epoch = len(history.train_loss)
    _set_mode(modules, False)
    return history


@torch.no_grad()
def _validation_loss(step_loss, modules, cache, idx, mean, std, device, batch_size, cancel) -> float:
    _set_mode(modules, False)
    losses = []
    for start in range(0, len(idx), batch_size):
        cancel.raise_if_cancelled()
        losses.append(float(step_loss(cache.batch(idx[start:start + batch_size], mean, std, device))))
    _set_mode(modules, True)
    return float(np.mean(losses))


def _set_mode(modules: list[nn.Module], training: bool) -> None:
    for module in modules:
        module.train(training)
