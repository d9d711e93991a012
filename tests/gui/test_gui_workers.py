"""The worker pattern: off-thread execution, GUI-thread signals, cancel, errors, shutdown."""

from __future__ import annotations

import threading
import time

from workbench.core.jobs import ProgressEvent
from workbench.gui.workers import JobRunner, Worker


def counting_job(n: int, *, progress, cancel, delay: float = 0.0):
    for i in range(n):
        cancel.raise_if_cancelled()
        progress(ProgressEvent("count", i + 1, n, metrics={"loss": 1.0 / (i + 1)}))
        time.sleep(delay)
    return {"thread": threading.get_ident(), "n": n}


def test_worker_runs_off_gui_thread_and_signals_in_gui_thread(qtbot, shown_errors):
    runner = JobRunner()
    gui_thread = threading.get_ident()
    seen: list[tuple[int, ProgressEvent]] = []
    worker = Worker(counting_job, 5)
    worker.progress.connect(lambda e: seen.append((threading.get_ident(), e)))  # a lambda on purpose
    with qtbot.waitSignal(worker.finished, timeout=10_000) as blocker:
        runner.start(worker, "count")
    result = blocker.args[0]
    assert result["n"] == 5
    assert result["thread"] != gui_thread
    assert [e.current for _, e in seen] == [1, 2, 3, 4, 5]  # metrics events are never dropped
    assert all(tid == gui_thread for tid, _ in seen)
    qtbot.waitUntil(lambda: runner.active_count == 0 and not runner.workers)
    assert shown_errors == []


def test_cancel_stops_within_a_step(qtbot, shown_errors):
    runner = JobRunner()
    counts: list[int] = []
    runner.activeCountChanged.connect(counts.append)
    worker = Worker(counting_job, 10_000, delay=0.01)
    finished: list[object] = []
    worker.finished.connect(finished.append)
    runner.start(worker, "long")
    qtbot.waitSignal(worker.progress, timeout=10_000).wait()
    with qtbot.waitSignal(worker.cancelled, timeout=5_000):
        worker.cancel()
    qtbot.waitUntil(lambda: runner.active_count == 0)
    assert finished == [] and worker.state == "cancelled"
    assert counts[0] == 1 and counts[-1] == 0
    assert shown_errors == []


def test_failure_opens_error_dialog_and_app_keeps_working(qtbot, shown_errors):
    def broken(*, progress, cancel):
        raise ValueError("Dataset folder '/nowhere' does not exist.")

    runner = JobRunner()
    worker = Worker(broken)
    with qtbot.waitSignal(worker.failed, timeout=10_000) as blocker:
        runner.start(worker, "Import")
    message, details = blocker.args
    assert "does not exist" in message and "Traceback" in details and "ValueError" in details
    assert shown_errors and shown_errors[0][0] == "Import failed" and "does not exist" in shown_errors[0][1]
    again = Worker(counting_job, 2)  # the runner still works after a failure
    with qtbot.waitSignal(again.finished, timeout=10_000):
        runner.start(again)


def test_shutdown_cancels_and_waits(qtbot, shown_errors):
    runner = JobRunner()
    workers = [runner.start(Worker(counting_job, 100_000, delay=0.01)) for _ in range(2)]
    qtbot.waitUntil(lambda: all(w.running for w in workers))
    assert runner.active_count == 2
    assert runner.shutdown(timeout_ms=5_000)
    assert all(w.token.cancelled for w in workers)
    assert all(w._thread is None or w._thread.isFinished() for w in workers)


def test_worker_runs_once(qtbot):
    runner = JobRunner()
    worker = runner.start(Worker(counting_job, 1))
    qtbot.waitUntil(lambda: not worker.running)
    try:
        worker.start()
    except RuntimeError:
        pass
    else:
        raise AssertionError("a second start must be refused")
