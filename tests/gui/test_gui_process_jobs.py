"""Jobs in a compute process, as the app runs them: the QThread worker owns a child process,
relays its progress and result with the usual signals, cancels it within a second, and
survives it being killed (error shown, workspace and labels intact, app still usable)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from workbench.core.process_jobs import SPARES, ComputeOptions
from workbench.gui.settings import AppSettings
from workbench.gui.workers import JobRunner, Worker, jobs_in_process

SLOW_AE = {"image_size": 64, "epochs": 400, "width": 8, "batch_size": 4}  # seconds of training, loss every epoch


@pytest.fixture(autouse=True)
def _no_spare_left():
    yield
    SPARES.close()  # the spare a job refilled: not left running after the test
    SPARES.reopen()


def first_training_event(qtbot, worker, timeout: int = 120_000):
    """Wait until the child reports a training step (it is mid-training then)."""
    seen = []
    worker.progress.connect(lambda e: seen.append(e) if e.stage.startswith("Training") and e.metrics else None)
    qtbot.waitUntil(lambda: bool(seen), timeout=timeout)
    return seen[0]


def test_app_default_is_the_process_and_runner_reads_the_settings(qapp):
    import workbench.gui.workers as workers

    assert os.environ.get("WORKBENCH_JOBS_IN_THREAD") or workers.jobs_in_process() is False  # the tests' switch
    workers.set_jobs_in_process(True)
    try:
        runner = JobRunner(settings=lambda: AppSettings(device="cpu", cpu_threads=3))
        nice = workers.COMPUTE_NICE  # the child yields the CPU to the window
        assert nice > 0
        assert runner.compute_options() == ComputeOptions(threads=3, device="cpu", nice=nice)
        runner = JobRunner(settings=lambda: AppSettings(device="auto", cpu_threads=0))
        assert runner.compute_options() == ComputeOptions(threads=0, device=None, nice=nice)
    finally:
        workers.set_jobs_in_process(False)
    assert JobRunner(settings=lambda: AppSettings()).compute_options() is None  # in-thread: no child


def test_training_and_inference_run_in_a_child_with_the_same_signals(qtbot, imported, jobs_in_process, wait_worker,
                                                                     shown_errors):
    assert jobs_in_process and jobs_in_process is not None
    panel = imported.training_panel
    imported.go_to_step(1)
    events = []
    worker = panel.start_training("padim", {"image_size": 64})
    worker.progress.connect(events.append)
    qtbot.waitUntil(lambda: worker.process_pid is not None or worker.state != "running", timeout=60_000)
    pid = worker.process_pid
    assert pid is not None and pid != os.getpid()
    with qtbot.waitSignal(worker.finished, timeout=180_000):
        pass
    wait_worker(worker)
    assert shown_errors == []
    assert worker.process_pid is None  # the child is gone once the job ended
    stages = {e.stage for e in events}
    assert any(s.startswith("Training") for s in stages) and any(s.startswith("Evaluating") for s in stages)
    models = imported.session.workspace.models(imported.session.dataset_entry.id)
    assert len(models) == 1 and models[0].exists and models[0].metrics["image_auroc"] is not None
    assert imported.session.active_model.id == models[0].id

    inference = panel.start_inference()
    with qtbot.waitSignal(inference.finished, timeout=180_000):
        pass
    wait_worker(inference)
    assert shown_errors == []
    summary = panel.last_inference
    assert len(summary.paths) == len(imported.session.dataset.test) and summary.csv_path.is_file()


def test_killed_worker_process_shows_an_error_and_the_app_stays_usable(qtbot, imported, jobs_in_process,
                                                                       wait_worker, shown_errors):
    session = imported.session
    workspace, entry = session.workspace, session.dataset_entry
    labelled = session.dataset.test[0].path
    workspace.set_label(entry.id, labelled, "NG", "scratch", note="checked by hand")
    labels_before = workspace.labels(entry.id)
    models_dir = workspace.path / "models"
    folders_before = sorted(p.name for p in models_dir.iterdir()) if models_dir.is_dir() else []

    panel = imported.training_panel
    imported.go_to_step(1)
    worker = panel.start_training("autoencoder", SLOW_AE)
    first_training_event(qtbot, worker)
    os.kill(worker.process_pid, signal.SIGKILL)  # as the OOM killer or a segfault would end it
    qtbot.waitUntil(lambda: worker.state != "running" and worker._thread is None, timeout=20_000)

    assert worker.state == "failed"
    assert len(shown_errors) == 1
    title, message, _details = shown_errors[0]
    assert "failed" in title and "stopped unexpectedly" in message and "SIGKILL" in message
    assert "labels are unchanged" in message
    assert workspace.labels(entry.id) == labels_before  # labels intact
    assert workspace.models(entry.id) == []  # no half-saved model registered
    folders_after = sorted(p.name for p in models_dir.iterdir()) if models_dir.is_dir() else []
    assert folders_after == folders_before  # and no model folder left behind
    assert not panel.busy and panel.train_button.isEnabled() and imported.jobs.active_count == 0

    again = panel.start_training("padim", {"image_size": 64})  # the app keeps working
    with qtbot.waitSignal(again.finished, timeout=180_000):
        pass
    wait_worker(again)
    assert len(workspace.models(entry.id)) == 1 and len(shown_errors) == 1


def test_cancel_stops_the_child_within_a_second(qtbot, imported, jobs_in_process, wait_worker, shown_errors):
    panel = imported.training_panel
    imported.go_to_step(1)
    worker = panel.start_training("autoencoder", SLOW_AE)
    first_training_event(qtbot, worker)
    pid = worker.process_pid
    ended: list[float] = []
    worker.cancelled.connect(lambda: ended.append(time.monotonic()))
    started = time.monotonic()
    panel.cancel()
    qtbot.waitUntil(lambda: worker.state != "running" and worker._thread is None, timeout=5_000)
    assert ended and ended[0] - started < 1.0
    assert worker.state == "cancelled" and shown_errors == []
    with pytest.raises(ProcessLookupError):  # the child is gone, not training on in the background
        os.kill(pid, 0)
    assert imported.session.workspace.models(imported.session.dataset_entry.id) == []


def test_small_jobs_stay_in_the_thread(qtbot, jobs_in_process, wait_worker):
    """An unmarked callable (import, label exchange) never pays a process start."""
    runner = JobRunner()
    worker = runner.start(Worker(lambda *, progress, cancel: os.getpid()))
    assert worker.compute_options is not None  # the runner would send heavy calls to a child...
    with qtbot.waitSignal(worker.finished, timeout=10_000) as blocker:
        pass
    wait_worker(worker)
    assert blocker.args == [os.getpid()]  # ...but this one ran here
