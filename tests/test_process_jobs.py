"""Jobs in a child process (workbench.core.process_jobs): progress, result, errors, cancel, crash.

The jobs live in ``process_job_helpers`` (a light module a spawned child imports by path, not
this test module with pytest); the children preload nothing, so each test costs about a second.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from workbench.core.jobs import CancelToken, Cancelled, ProgressEvent
from workbench.core.process_jobs import (ChildJobError, ComputeOptions, SpareProcesses, WorkerCrashed, call,
                                         compute_in_process, run_job)


from process_job_helpers import counting, marked  # noqa: E402 (tests/ is on sys.path)

HELPERS = "process_job_helpers"
TARGET = f"{HELPERS}:counting"


@pytest.fixture
def spares():
    pool = SpareProcesses(size=0, preload=())  # no spare: each job starts its own bare child
    yield pool
    pool.close()


def test_result_and_progress_come_back_from_the_child(spares):
    events: list[ProgressEvent] = []
    out = run_job(TARGET, (5,), {}, progress=events.append, spares=spares)
    assert out["n"] == 5 and out["pid"] != os.getpid()
    np.testing.assert_array_equal(out["array"], np.arange(5, dtype=np.float32))
    assert out["path"] == Path("x") / "5"
    assert [e.current for e in events] == [1, 2, 3, 4, 5]  # metrics always pass the coalescing
    assert events[-1].metrics == {"loss": 4.0} and events[-1].stage == "Counting"


def test_error_in_the_child_keeps_its_message_and_traceback(spares):
    with pytest.raises(ChildJobError) as info:
        run_job(f"{HELPERS}:broken", spares=spares)
    assert "no train/good images" in str(info.value)
    assert info.value.kind == "ValueError" and "raise ValueError" in info.value.details


def test_cooperative_cancel_stops_the_child_quickly(spares):
    token = CancelToken()
    seen: list[ProgressEvent] = []
    cancelled_at: list[float] = []

    def progress(event: ProgressEvent) -> None:
        seen.append(event)
        if len(seen) == 3:
            token.cancel()
            cancelled_at.append(time.monotonic())

    with pytest.raises(Cancelled):
        run_job(TARGET, (10_000, 0.01), {}, progress=progress, cancel=token, spares=spares)
    assert time.monotonic() - cancelled_at[0] < 1.0
    assert len(seen) == 3  # nothing is relayed after the cancel


def test_a_child_that_ignores_cancel_is_terminated_within_a_second(spares):
    token = CancelToken()
    children = []

    def progress(event: ProgressEvent) -> None:
        token.cancel()
        children.append(time.monotonic())

    with pytest.raises(Cancelled):
        run_job(f"{HELPERS}:deaf", progress=progress, cancel=token, spares=spares)
    assert time.monotonic() - children[0] < 1.0


def test_a_killed_child_is_a_clear_error_not_a_hang(spares):
    children = []

    def progress(event: ProgressEvent) -> None:
        if event.current == 2 and children:
            os.kill(children[0].pid, signal.SIGKILL)

    with pytest.raises(WorkerCrashed) as info:
        run_job(TARGET, (10_000, 0.01), {}, progress=progress, spares=spares,
                on_child=lambda c: children.append(c) if c is not None else None)
    message = str(info.value)
    assert "SIGKILL" in message and "Counting" in message and "unchanged" in message


def test_threads_and_device_are_applied_in_the_child(spares):
    preloaded = SpareProcesses(size=0, preload=("torch",))  # torch imported before the job: set_num_threads
    threads, device = run_job(f"{HELPERS}:threads_and_device", options=ComputeOptions(threads=1, device="cpu"),
                              spares=preloaded)
    assert (threads, device) == (1, "cpu")
    # torch imported by the job itself: the thread count reaches it through OMP_NUM_THREADS
    threads, device = run_job(f"{HELPERS}:threads_and_device", options=ComputeOptions(threads=0), spares=spares)
    assert (threads, device) == (os.cpu_count(), None)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="POSIX scheduling priority")
def test_child_runs_at_the_requested_lower_priority(spares):
    assert run_job(f"{HELPERS}:niceness", options=ComputeOptions(nice=5), spares=spares) == os.nice(0) + 5
    assert run_job(f"{HELPERS}:niceness", spares=spares) == os.nice(0)


def test_spare_is_warm_and_refilled(spares):
    spares.size = 1
    spares.refill()
    assert spares.wait_ready(30) and spares.idle_count == 1
    warm_pid = spares._idle[0].pid
    out = run_job(TARGET, (1,), {}, spares=spares)
    assert out["pid"] == warm_pid  # the job ran in the child started ahead
    deadline = time.monotonic() + 10  # the next one is started in the background
    while spares.idle_count < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert spares.idle_count == 1 and spares._idle[0].pid != warm_pid  # and is waiting


def test_call_runs_marked_jobs_in_a_child_only_inside_compute_in_process(monkeypatch, spares):
    import workbench.core.process_jobs as pj

    monkeypatch.setattr(pj, "SPARES", spares)
    monkeypatch.setattr(pj.run_job, "__kwdefaults__", {**pj.run_job.__kwdefaults__, "spares": spares})
    assert call(marked, 1, cancel=CancelToken()) == os.getpid()
    with compute_in_process(ComputeOptions(threads=1)):
        assert call(marked, 1, cancel=CancelToken()) != os.getpid()
        assert call(counting, 1, cancel=CancelToken())["pid"] == os.getpid()  # not marked: stays here
    with compute_in_process(None):
        assert call(marked, 1, cancel=CancelToken()) == os.getpid()


def test_options_are_checked():
    with pytest.raises(ValueError, match="threads"):
        ComputeOptions(threads=-1)
    with pytest.raises(ValueError, match="device"):
        ComputeOptions(device="tpu")
    with pytest.raises(ValueError, match="nice"):
        ComputeOptions(nice=-1)
