"""Where the batches of a ``predict`` run are scored: a local process pool or a Ray cluster.

Both backends hand rows back in batch order (a finished batch waits until every batch before
it is written), so ``scores.csv`` has the same rows in the same order as a one-process run and
resuming after a killed driver works exactly as today: rows on disk are done, the rest is
scored again. A batch whose worker process dies is scored again by another worker; rows are
written by the driver only, once per batch, so nothing is duplicated or missing.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.calibration.policy import InspectionPolicy
from workbench.core.cluster.worker import BatchResult, ScorerSpec, score_batch
from workbench.core.jobs import CancelToken

log = logging.getLogger(__name__)

INSTALL_HINT = "Install the cluster extra: pip install -e '.[cluster]' (or pip install 'ray[default]')."
RETRIES = 3  # times a batch is sent again after its worker process died


class ClusterError(RuntimeError):
    """The cluster cannot be used (Ray missing, address unreachable, a batch kept killing workers)."""


@dataclass(frozen=True)
class ClusterSpec:
    """``kind``: 'local' (process pool), 'ray' (connect to ``address``, or start a local Ray
    when it is None); ``note``: why 'auto' chose what it chose, for the user."""

    kind: str
    address: str | None = None
    note: str = ""


def ray_installed() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def parse_cluster(text: str | None, environ: dict[str, str] | None = None) -> ClusterSpec:
    """``auto``: Ray when installed (the cluster in RAY_ADDRESS, else a local one), otherwise a
    local process pool; ``local``: a local process pool; anything else is a Ray address
    (``ray://HOST:PORT`` or a head node's ``HOST:PORT``), which needs Ray."""
    env = os.environ if environ is None else environ
    value = (text or "auto").strip()
    if value == "local":
        return ClusterSpec("local")
    if value == "auto":
        address = env.get("RAY_ADDRESS") or None
        if ray_installed():
            return ClusterSpec("ray", address, f"Ray cluster at {address}" if address else "a local Ray instance")
        if address:
            raise ClusterError(f"RAY_ADDRESS is set ({address}) but Ray is not installed. {INSTALL_HINT}")
        return ClusterSpec("local", note="a local process pool (Ray is not installed)")
    if not ray_installed():
        raise ClusterError(f"--cluster {value} needs Ray, which is not installed. {INSTALL_HINT} "
                           "Or use --cluster local for a process pool on this computer.")
    return ClusterSpec("ray", value, f"Ray cluster at {value}")


@dataclass
class WorkerStats:
    """Who scored what: distinct worker processes, package loads and resent batches."""

    pids: set[int] = field(default_factory=set)
    loads: dict[int, int] = field(default_factory=dict)
    resent: int = 0

    def add(self, result: BatchResult) -> None:
        self.pids.add(result.pid)
        self.loads[result.pid] = result.loads

    @property
    def total_loads(self) -> int:
        return sum(self.loads.values())


def make_backend(spec: ClusterSpec, scorer: ScorerSpec, workers: int | None = None) -> "LocalPoolBackend | RayBackend":
    if spec.kind == "local":
        return LocalPoolBackend(scorer, workers or max(1, (os.cpu_count() or 2)))
    return RayBackend(scorer, spec.address, workers)


def _in_order(finished: dict[int, BatchResult], next_index: int) -> Iterator[BatchResult]:
    while next_index in finished:
        yield finished.pop(next_index)
        next_index += 1


class LocalPoolBackend:
    """Batches scored by ``workers`` spawned processes of this computer (no Ray needed)."""

    def __init__(self, scorer: ScorerSpec, workers: int) -> None:
        self.scorer, self.workers = scorer, max(1, int(workers))
        self.stats = WorkerStats()

    def describe(self) -> str:
        return f"{self.workers} local worker process(es)"

    def score_batches(self, batches: Sequence[list[tuple[Path, str]]], policy: InspectionPolicy,
                      overlay_dir: Path | None, cancel: CancelToken | None) -> Iterator[list[dict[str, Any]]]:
        context = multiprocessing.get_context("spawn")  # fork would copy torch's threads and locks
        overlay = str(overlay_dir) if overlay_dir else None
        pool = ProcessPoolExecutor(self.workers, mp_context=context)
        pending: dict[Future, int] = {}
        finished: dict[int, BatchResult] = {}
        attempts = [0] * len(batches)
        next_submit = next_yield = 0

        def submit(index: int) -> None:
            items = [(str(p), stem) for p, stem in batches[index]]
            pending[pool.submit(score_batch, self.scorer, index, items, policy, overlay)] = index

        try:
            while next_yield < len(batches):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                while next_submit < len(batches) and len(pending) + len(finished) < 2 * self.workers:
                    submit(next_submit)
                    next_submit += 1
                done, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
                broken = []
                for future in done:
                    index = pending.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken.append(index)
                        continue
                    self.stats.add(result)
                    finished[index] = result
                if broken:  # a worker died: every batch in flight is lost; start a new pool
                    lost = sorted(broken + list(pending.values()))
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool, pending = ProcessPoolExecutor(self.workers, mp_context=context), {}
                    for index in lost:
                        attempts[index] += 1
                        if attempts[index] > RETRIES:
                            raise ClusterError(_killed_message(batches[index]))
                        self.stats.resent += 1
                        submit(index)
                for result in _in_order(finished, next_yield):
                    next_yield += 1
                    yield result.rows
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class RayBackend:
    """Batches scored by Ray tasks (one CPU each) spread over the cluster. A worker process keeps
    the loaded package between tasks (see :mod:`.worker`); Ray sends a task whose worker died
    to another worker (``max_retries``)."""

    def __init__(self, scorer: ScorerSpec, address: str | None, workers: int | None = None) -> None:
        self.scorer, self.address, self.workers = scorer, address, workers
        self.stats = WorkerStats()
        self._started = False

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
        return f"{where} ({self._cpus()} CPU(s))"

    def _connect(self):
        import ray

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
            if self.address is None:
                kwargs.update(num_cpus=self.workers or os.cpu_count() or 1, include_dashboard=False)
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ClusterError(f"Cannot connect to the Ray cluster at {self.address}: {exc}. Check the "
                                   "address (ray://HOST:PORT or HOST:PORT of the head node) and that the "
                                   "cluster is running (ray status).") from exc
            self._started = True
        return ray

    def _cpus(self) -> int:
        import ray

        return int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else (self.workers or 1)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def score_batches(self, batches: Sequence[list[tuple[Path, str]]], policy: InspectionPolicy,
                      overlay_dir: Path | None, cancel: CancelToken | None) -> Iterator[list[dict[str, Any]]]:
        ray = self._connect()
        remote = ray.remote(num_cpus=self.scorer.threads, max_retries=RETRIES)(score_batch)
        in_flight = 2 * (self.workers or self._cpus())
        policy_ref = ray.put(policy)
        overlay = str(overlay_dir) if overlay_dir else None
        pending: dict[Any, int] = {}
        finished: dict[int, BatchResult] = {}
        next_submit = next_yield = 0
        try:
            while next_yield < len(batches):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                while next_submit < len(batches) and len(pending) + len(finished) < in_flight:
                    items = [(str(p), stem) for p, stem in batches[next_submit]]
                    pending[remote.remote(self.scorer, next_submit, items, policy_ref, overlay)] = next_submit
                    next_submit += 1
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.WorkerCrashedError as exc:  # retries used up
                        raise ClusterError(_killed_message(batches[index])) from exc
                    self.stats.add(result)
                    finished[index] = result
                for result in _in_order(finished, next_yield):
                    next_yield += 1
                    yield result.rows
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)


def _killed_message(batch: Sequence[tuple[Path, str]]) -> str:
    first = batch[0][0] if batch else "?"
    return (f"A batch of {len(batch)} image(s) starting with {first} killed its worker process "
            f"{RETRIES + 1} times (out of memory, or a crash in the model). The rows scored so far are "
            "kept; check those images, then run the same command again to resume.")
