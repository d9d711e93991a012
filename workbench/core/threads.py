"""CPU thread settings that keep training usable on a busy 2-core machine.

Two things make many small multi-threaded steps collapse when other work holds the cores:

* **Spin-waiting.** By default the OpenMP runtime that torch (and faiss) use keeps idle worker
  threads spinning at the end of every parallel region, burning the core that the thread they
  wait for needs. :func:`prefer_passive_waiting` asks for ``OMP_WAIT_POLICY=PASSIVE`` (idle
  workers sleep) before the runtime loads; it never overrides a value the user set. Measured on
  the 2-core VM under load: the EfficientNet-Lite0 forward went from about 700 to 160 ms/image
  with 2 threads (``benchmarks/contention.py``).
* **Threads for tiny work.** A loop of thousands of matrix-vector products (greedy coreset
  selection) gains little from a second thread and waits for it at every step;
  :func:`single_thread` runs such a loop on one thread and restores the setting afterwards.

No torch import at module level: the torch-free deployment path imports ``workbench``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY"


def prefer_passive_waiting(environ: dict[str, str] | None = None) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the variable is already set; True if it was set.

    Only takes effect for an OpenMP runtime loaded afterwards (it reads the variable once, when
    torch or faiss is first imported); ``workbench/__init__.py`` does the same inline, first thing.
    """
    env = os.environ if environ is None else environ
    if WAIT_POLICY_VARIABLE in env:
        return False
    env[WAIT_POLICY_VARIABLE] = "PASSIVE"
    return True


@contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one torch intra-op thread, then restore the previous count."""
    import torch

    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
