"""Progress reporting and cooperative cancellation shared by every long-running job.

The core never knows who is listening: the CLI turns progress events into tqdm bars,
the GUI turns them into Qt signals. Cancellation is cooperative: long loops call
``cancel.raise_if_cancelled()`` once per step, so a cancel takes effect within one step
and leaves no half-written state behind (writers only commit after the loop finishes).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol


class Cancelled(Exception):
    """Raised inside a job when its cancel token was set; the job's results are discarded."""


class CancelToken:
    """Thread-safe flag checked by workers; set from the GUI thread or a signal handler.

    ``event`` may be any object with ``set()``/``is_set()``: a ``multiprocessing`` Event makes
    the token shared with a compute process (:mod:`workbench.core.process_jobs`)."""

    def __init__(self, event=None) -> None:
        self._event = event if event is not None else threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("the job was cancelled")


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report: ``current`` of ``total`` units done in ``stage``.

    ``metrics`` carries live numbers such as the training loss so that the GUI can plot them.
    ``total`` is 0 when the amount of work is unknown.
    """

    stage: str
    current: int
    total: int
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return min(1.0, self.current / self.total) if self.total > 0 else 0.0


class ProgressCallback(Protocol):
    def __call__(self, event: ProgressEvent) -> None: ...


def no_progress(event: ProgressEvent) -> None:
    """Default progress sink that ignores every event."""


def make_reporter(progress: ProgressCallback | None, stage: str, total: int) -> Callable[..., None]:
    """Return ``report(current, message="", **metrics)`` bound to one stage."""
    sink = progress or no_progress

    def report(current: int, message: str = "", **metrics: float) -> None:
        sink(ProgressEvent(stage=stage, current=current, total=total, message=message,
                           metrics={k: float(v) for k, v in metrics.items()}))

    return report
