"""Jobs for tests/test_process_jobs.py: module-level, importable by a spawned child, and light
(no pytest import), so a child starts in well under a second."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from workbench.core.jobs import CancelToken, make_reporter
from workbench.core.process_jobs import process_job


def counting(n: int, delay: float = 0.0, *, progress=None, cancel: CancelToken) -> dict:
    report = make_reporter(progress, "Counting", n)
    for i in range(n):
        cancel.raise_if_cancelled()
        report(i + 1, loss=float(i))
        time.sleep(delay)
    return {"n": n, "pid": os.getpid(), "array": np.arange(n, dtype=np.float32), "path": Path("x") / str(n)}


def broken(*, progress=None, cancel: CancelToken) -> None:
    raise ValueError("the dataset folder /data/x has no train/good images: import a category")


def deaf(*, progress=None, cancel: CancelToken) -> None:
    """Ignores cancel (a long native call): the parent must terminate it."""
    make_reporter(progress, "Deaf", 0)(0)
    time.sleep(60)


def threads_and_device(device=None, *, progress=None, cancel: CancelToken) -> tuple:
    import torch

    return torch.get_num_threads(), device


@process_job
def marked(n: int, *, progress=None, cancel: CancelToken) -> int:
    return os.getpid()


def niceness(*, progress=None, cancel: CancelToken) -> int:
    return os.nice(0)
