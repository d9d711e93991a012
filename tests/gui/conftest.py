"""Fixtures for GUI tests: a tiny MVTec-layout dataset, isolated settings, a main window.

Every test runs offscreen with real widgets. Error dialogs are recorded instead of shown
(a modal dialog would block the test), torch uses one thread (the machine is shared).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

CATEGORIES = ("widget", "gadget")


def _texture(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    img = np.full((size, size, 3), 120, np.uint8)
    img[::8, :, :] = 90  # a regular weave, so a defect breaks a pattern
    img[:, ::8, :] = 90
    return np.clip(img.astype(np.int16) + rng.integers(-8, 8, img.shape), 0, 255).astype(np.uint8)


def make_tiny_mvtec(root: Path, categories=CATEGORIES, n_train: int = 8, n_good: int = 3, n_bad: int = 3) -> Path:
    """A two-category MVTec AD layout with 64 px images and exact masks (written with cv2)."""
    rng = np.random.default_rng(0)
    for cat in categories:
        base = root / cat
        for split, label, n in (("train", "good", n_train), ("test", "good", n_good), ("test", "scratch", n_bad)):
            folder = base / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = _texture(rng)
                if label != "good":
                    mask = np.zeros(img.shape[:2], np.uint8)
                    cv2.line(mask, (10 + i, 12), (50, 40 + i), 255, 3)
                    img[mask > 0] = (20, 20, 200)
                    gt = base / "ground_truth" / label
                    gt.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(gt / f"{i:03d}_mask.png"), mask)
                cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    return root


@pytest.fixture(autouse=True)
def _garbage_collected_in_gui_thread(qapp):
    """As in the app: no cyclic collection in worker threads while a test's widgets live (a
    worker collecting a leaked widget deadlocked against the GUI thread; see gc_in_gui_thread)."""
    from workbench.gui.gc_in_gui_thread import GuiThreadCollector

    collector = GuiThreadCollector(qapp)
    collector.start()
    yield
    collector.stop()
    collector.deleteLater()


@pytest.fixture(autouse=True)
def _jobs_in_thread(monkeypatch):
    """GUI tests run jobs in their QThread (the documented WORKBENCH_JOBS_IN_THREAD switch):
    a child process per small job would cost seconds each. The app's default, a compute
    process, is tested with the ``jobs_in_process`` fixture (tests/gui/test_gui_process_jobs.py)."""
    import workbench.gui.workers as workers

    monkeypatch.setattr(workers, "_jobs_in_process", False)


@pytest.fixture
def jobs_in_process(monkeypatch):
    """Jobs compute in a child process, as in the app, with one torch thread on the CPU."""
    import workbench.gui.workers as workers
    from workbench.gui.settings import AppSettings

    monkeypatch.setattr(workers, "_jobs_in_process", True)
    monkeypatch.setattr(workers.JobRunner, "compute_options",
                        lambda self: workers.ComputeOptions(threads=1, device="cpu"))
    return AppSettings(device="cpu", cpu_threads=1)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_mvtec(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture
def shown_errors(monkeypatch) -> list[tuple[str, str, str]]:
    """Records (title, message, details) of every error dialog instead of opening it."""
    from workbench.gui.widgets import errors

    shown: list[tuple[str, str, str]] = []
    monkeypatch.setattr(errors, "show_error",
                        lambda parent, title, message, details="": shown.append((title, message, details)))
    return shown


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def app_dirs(tmp_path, monkeypatch, tiny_root) -> Path:
    """The user data folder and the sample data point into tmp_path."""
    import workbench.gui.sample as sample

    data_dir = tmp_path / "userdata"
    monkeypatch.setattr(sample, "default_workspace_dir", lambda: data_dir / "default")
    monkeypatch.setattr(sample, "sample_data_root", lambda: tiny_root)
    import workbench.gui.main_window as mw

    monkeypatch.setattr(mw, "sample_data_root", lambda: tiny_root)
    return data_dir


@pytest.fixture
def window(qtbot, settings, shown_errors, app_dirs, monkeypatch):
    from workbench.gui.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "confirm", lambda self, title, question: True)
    win = MainWindow(settings, restore_last=False)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


@pytest.fixture
def ws_window(window, tmp_path):
    """A main window with a fresh workspace open."""
    assert window.open_workspace(tmp_path / "ws", create=True) is not None
    return window


@pytest.fixture
def wait_worker(qtbot):
    """``wait_worker(worker)``: until it ended (finished, failed or cancelled) and its thread
    stopped, so the next step sees the job's effects."""

    def wait(worker, timeout: int = 60_000) -> None:
        assert worker is not None
        qtbot.waitUntil(lambda: worker.state != "running" and worker._thread is None, timeout=timeout)

    return wait


@pytest.fixture
def imported(qtbot, ws_window, tiny_root, wait_worker):
    """ws_window with both tiny categories imported and the first one current."""
    worker = ws_window.dataset_panel.import_dataset(tiny_root)
    wait_worker(worker)
    qtbot.waitUntil(lambda: ws_window.session.dataset is not None, timeout=10_000)
    return ws_window


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, tiny_root) -> Path:
    """A tiny PaDiM (64 px) trained and evaluated once on the tiny 'widget' category."""
    from workbench.core.data import load_dataset
    from workbench.core.jobs import CancelToken
    from workbench.core.predictions import evaluation_for
    from workbench.gui.pipelines import train_evaluate_save

    model_dir = tmp_path_factory.mktemp("trained") / "padim"
    dataset = load_dataset(tiny_root, category="widget")
    train_evaluate_save(dataset, "padim", {"image_size": 64}, model_dir, cancel=CancelToken())
    evaluation_for(model_dir, dataset)
    return model_dir


@pytest.fixture
def sample_window(qtbot, window, trained_model, wait_worker):
    """The main window on the sample workspace with the trained model registered and active."""
    worker = window.open_sample_workspace()
    if worker is not None:
        wait_worker(worker)
    session = window.session
    qtbot.waitUntil(lambda: session.dataset_entry is not None and session.dataset is not None, timeout=20_000)
    workspace, entry = session.workspace, session.dataset_entry
    target = workspace.path / "models" / "trained-padim"
    shutil.copytree(trained_model, target)
    model = workspace.add_model(entry.id, "padim", target, {"image_size": 64}, {})
    session.notify_models_changed()
    session.set_active_model(model)
    return window


@pytest.fixture
def styled():
    """The application's own style sheet (tests otherwise run unstyled)."""
    from PySide6.QtWidgets import QApplication

    from workbench.gui.app import load_style_sheet

    app = QApplication.instance()
    before = app.styleSheet()
    app.setStyleSheet(load_style_sheet())
    yield
    app.setStyleSheet(before)
