"""Method & Training step: real (tiny) training in a worker, cancel, persistence, inference."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QSettings, QThread

import workbench.gui.panels.training_panel as training_panel
from workbench.core.methods import METHODS

TINY_PARAMS = {"image_size": 64, "coreset_ratio": 0.05, "batch_size": 4}


@pytest.fixture
def record_threads(monkeypatch):
    """Wraps the training job to note the thread it runs in (and optionally to pause it)."""
    seen: dict[str, object] = {"gate": None}
    original = training_panel.train_evaluate_save

    def wrapped(*args, progress, cancel, **kwargs):
        seen["ident"] = threading.get_ident()
        seen["qthread"] = QThread.currentThread()
        gate = seen["gate"]

        def report(event):
            progress(event)
            if gate is not None and not gate.is_set():
                seen["paused"] = True
                deadline = time.monotonic() + 20
                # hold the job mid-training until the test opens the gate or cancels
                while not gate.is_set() and not cancel.cancelled and time.monotonic() < deadline:
                    time.sleep(0.005)
        return original(*args, progress=report, cancel=cancel, **kwargs)

    monkeypatch.setattr(training_panel, "train_evaluate_save", wrapped)
    return seen


def test_method_list_and_form_follow_the_registry(imported):
    panel = imported.training_panel
    assert panel.methods_model.rowCount() == len(METHODS)
    for row, cls in enumerate(METHODS.values()):
        panel.method_view.setCurrentIndex(panel.methods_model.index(row))
        assert cls.title in panel.method_description.text()
        assert set(panel.form().values()) == {p.name for p in cls.schema()}
    assert panel.train_button.isEnabled()


def test_training_runs_off_gui_thread_and_adds_a_model(qtbot, imported, record_threads, wait_worker, shown_errors):
    panel = imported.training_panel
    imported.go_to_step(1)
    assert imported.current_step() == "training"
    panel.select_method("patchcore")
    panel.form().set_values(TINY_PARAMS)
    events = []
    worker = panel.start_training()
    worker.progress.connect(events.append)
    assert not panel.train_button.isEnabled()
    assert imported.jobs_label.text() == "1 background job running"
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    wait_worker(worker)
    assert shown_errors == []
    assert record_threads["ident"] != threading.get_ident()
    assert record_threads["qthread"] is not QThread.currentThread()
    stages = {e.stage for e in events}
    assert any(s.startswith("Training") for s in stages) and any(s.startswith("Evaluating") for s in stages)
    assert panel.progress.bar.value() == panel.progress.bar.maximum()

    models = imported.session.workspace.models(imported.session.dataset_entry.id)
    assert len(models) == 1 and models[0].exists
    assert models[0].params["image_size"] == 64 and models[0].metrics["image_auroc"] is not None
    assert panel.models_model.rowCount() == 1
    assert panel.models_model.index(0, 0).data() == METHODS["patchcore"].title
    assert imported.session.active_model.id == models[0].id
    assert imported.model_label.text().startswith("Model: ")
    # The Review step loads the new model's predictions in the background; then all is quiet.
    qtbot.waitUntil(lambda: imported.jobs_label.text() == "No background jobs", timeout=120_000)
    runs = imported.session.workspace.runs()
    assert runs[0].kind == "train" and runs[0].status == "ok"

    # Inference with the new model over the test split, in a worker.
    worker = panel.start_inference()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    wait_worker(worker)
    assert len(panel.last_inference.paths) == 6
    assert "Scored 6 image(s)" in panel.models_box.summary.text()

    # Reopen the workspace in a new window (as after a restart): the model is still there.
    path = imported.session.workspace.path
    settings: QSettings = imported.settings
    imported.close()
    from workbench.gui.main_window import MainWindow

    again = MainWindow(settings, restore_last=True)
    qtbot.addWidget(again)
    assert again.session.workspace is not None and again.session.workspace.path == path
    qtbot.waitUntil(lambda: again.training_panel.models_model.rowCount() == 1, timeout=30_000)
    assert again.session.active_model.id == models[0].id
    assert again.training_panel.form("patchcore").values()["image_size"] == 64  # params remembered
    again.close()


def test_cancel_training_adds_nothing(qtbot, imported, record_threads, wait_worker, shown_errors):
    panel = imported.training_panel
    panel.form("patchcore").set_values(TINY_PARAMS)
    record_threads["gate"] = gate = threading.Event()
    worker = panel.start_training("patchcore")
    qtbot.waitUntil(lambda: record_threads.get("paused", False), timeout=60_000)
    with qtbot.waitSignal(worker.cancelled, timeout=30_000):
        imported.cancel_current_job()  # what Esc does
        gate.set()
    wait_worker(worker)
    workspace = imported.session.workspace
    assert workspace.models() == []
    assert not any(workspace.models_dir.iterdir())  # no half-written model folder
    assert workspace.runs()[0].status == "cancelled"
    assert "Cancelled" in panel.progress.stage.text()
    assert shown_errors == []
    assert panel.train_button.isEnabled()


def test_failing_training_shows_dialog_and_app_keeps_running(qtbot, imported, monkeypatch, wait_worker, shown_errors):
    def broken(*args, progress, cancel, **kwargs):
        raise RuntimeError("CUDA out of memory while extracting features")

    monkeypatch.setattr(training_panel, "train_evaluate_save", broken)
    panel = imported.training_panel
    worker = panel.start_training("patchcore", dict(TINY_PARAMS))
    wait_worker(worker)
    assert len(shown_errors) == 1
    title, message, details = shown_errors[0]
    assert "failed" in title and "out of memory" in message and "RuntimeError" in details
    assert imported.session.workspace.models() == []
    assert imported.session.workspace.runs()[0].status == "failed"
    assert imported.isVisible() and panel.train_button.isEnabled()
    assert imported.go_to_step(0)  # still responsive


def test_bad_parameters_end_in_a_dialog_not_a_crash(qtbot, imported, wait_worker, shown_errors):
    worker = imported.training_panel.start_training("patchcore", {"image_size": "huge"})
    wait_worker(worker)
    assert len(shown_errors) == 1 and "image_size" in shown_errors[0][1]
    assert imported.session.workspace.models() == []


def test_switching_workspace_cancels_training_cleanly(qtbot, imported, record_threads, tmp_path, shown_errors):
    panel = imported.training_panel
    old = imported.session.workspace
    old_path = old.path
    record_threads["gate"] = gate = threading.Event()
    worker = panel.start_training("patchcore", dict(TINY_PARAMS))
    qtbot.waitUntil(lambda: record_threads.get("paused", False), timeout=60_000)
    assert not gate.is_set()  # still paused mid-training: only the switch's cancel releases it
    assert imported.open_workspace(tmp_path / "other", create=True) is not None  # confirm() says yes
    assert worker.state == "cancelled" and worker._thread is None
    from workbench.core.workspace import Workspace

    with Workspace.open(old_path) as reopened:
        assert reopened.models() == []
        assert reopened.runs()[0].status == "cancelled"
        assert not any(reopened.models_dir.iterdir())
    assert imported.session.workspace.models() == []
    assert shown_errors == []


def test_form_says_how_many_good_images_are_held_out_and_why(tmp_path):
    """40 good images: the form says 36 are fitted and 4 held out for good-score statistics, the
    counts core's training (train_model) uses; under 10 images nothing is held out."""
    from tests.gui.conftest import make_tiny_mvtec
    from workbench.core.data import load_dataset
    from workbench.core.training import training_split

    root = make_tiny_mvtec(tmp_path / "data", categories=("widget",), n_train=40, n_good=1, n_bad=1)
    dataset = load_dataset(root, category="widget")
    split = training_split(dataset, seed=0)
    assert (len(split.fit), len(split.holdout), split.from_val) == (36, 4, False)
    assert training_panel.good_images_text(dataset) == (
        "40 good images: 36 to fit, 4 held out to measure good-score statistics")
    small = load_dataset(make_tiny_mvtec(tmp_path / "small", categories=("widget",), n_train=8, n_good=1,
                                         n_bad=1), category="widget")
    assert "none held out" in training_panel.good_images_text(small)


def test_training_split_is_what_training_uses(tmp_path, monkeypatch):
    """train_model fits on exactly training_split's images and scores its held-out ones."""
    from tests.gui.conftest import make_tiny_mvtec
    from workbench.core import training
    from workbench.core.data import load_dataset

    dataset = load_dataset(make_tiny_mvtec(tmp_path / "data", categories=("widget",), n_train=20, n_good=1,
                                           n_bad=1), category="widget")
    split = training.training_split(dataset, seed=3)
    result = training.train_model(dataset, "padim", {"image_size": 64, "seed": 3}, device="cpu")
    assert (result.n_train, result.n_holdout) == (len(split.fit), len(split.holdout)) == (18, 2)
