"""The Live step / station view: the sample replay shows verdicts, counts and the NG strip;
the loop runs off the GUI thread; Stop ends it with a log; the main window's Live step."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from workbench.core.live import read_log


def test_station_window_replays_the_sample_and_shows_verdicts(qtbot, tmp_path: Path) -> None:
    from workbench.gui.live_window import StationWindow
    from workbench.gui.widgets.live_result_dialog import LiveResultDialog

    window = StationWindow(tmp_path / "logs")
    qtbot.addWidget(window)
    window.show()
    panel = window.panel
    assert window.open_demo("washer", fps=20)
    assert panel.runner.running and panel.start_button.text() == "Stop"
    assert panel.runner._thread is not threading.current_thread()
    qtbot.waitUntil(lambda: panel.last is not None and panel.strip.count() >= 2, timeout=90_000)
    assert panel.banner.verdict in ("OK", "NG") and panel.banner.text() == panel.banner.verdict
    assert panel.image.pixmap() is not None and not panel.image.pixmap().isNull()
    assert int(panel.count_labels["NG"].text()) >= 2  # the washer test set starts with dents
    assert "frames/s" in panel.perf_label.text() and "NG from" in panel.threshold_label.text()
    assert panel.gauge.ng is not None and panel.gauge.score is not None
    first = panel.strip.item(0).data(Qt.ItemDataRole.UserRole)
    assert first.verdict in ("NG", "REVIEW") and first.view is not None
    rect = panel.strip.visualItemRect(panel.strip.item(0))
    QTest.mouseClick(panel.strip.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    dialogs = [w for w in panel.findChildren(LiveResultDialog)]
    assert dialogs and dialogs[-1].result is first
    dialogs[-1].close()
    panel.stop()
    qtbot.waitUntil(lambda: not panel.runner.running and panel.start_button.text() == "Start", timeout=30_000)
    assert "Stopped" in panel.status.text()
    rows = read_log(panel.session_dir / "live.csv")
    assert len(rows) >= 2 and {r["decision"] for r in rows} <= {"OK", "NG", "dropped"}
    assert any((panel.session_dir / "ng-review").iterdir())
    window.close()


def test_station_reports_a_source_that_cannot_start(qtbot, tmp_path: Path) -> None:
    from workbench.gui.live_window import StationWindow
    from workbench.gui.panels.live_panel import WATCH

    window = StationWindow(tmp_path / "logs")
    qtbot.addWidget(window)
    panel = window.panel
    assert not panel.start()  # no model yet
    assert "model" in panel.status.text()
    from workbench.core.sample_models import shipped_models

    panel.set_model(shipped_models()["washer"].export_dir)
    panel.set_source(WATCH, tmp_path / "missing")
    assert panel.start()
    qtbot.waitUntil(lambda: "Could not run" in panel.status.text(), timeout=60_000)
    assert "does not exist" in panel.status.text() and panel.start_button.text() == "Start"
    window.close()


def test_live_is_step_six_of_the_main_window(qtbot, ws_window, tmp_path: Path) -> None:
    from workbench.gui.main_window import STEPS

    assert [s.key for s in STEPS][-1] == "live" and STEPS[-1].available
    QTest.keyClick(ws_window, Qt.Key.Key_6, Qt.KeyboardModifier.ControlModifier)
    assert ws_window.current_step() == "live"
    panel = ws_window.live_panel
    assert panel.log_root == ws_window.session.workspace.path / "live"  # logs go into the workspace
    panel.toggle_full_screen()
    assert not ws_window.navigator.isVisible() and ws_window.isFullScreen()
    panel.toggle_full_screen()
    assert ws_window.navigator.isVisible() and not ws_window.isFullScreen()


def test_live_step_fits_a_laptop_screen_and_opens_dataset_images_in_review(qtbot, styled, sample_window) -> None:
    import time

    import numpy as np
    from test_gui_laptop_layout import TITLE_BAR, layout_problems

    from workbench.core.labels import label_key
    from workbench.core.live import LiveResult
    from workbench.gui.widgets.live_result_dialog import LiveResultDialog

    win = sample_window
    win.resize(1366, 768 - TITLE_BAR)
    assert win.go_to_step(5) and win.current_step() == "live"
    qtbot.wait(50)
    problems, checked = layout_problems(win)
    assert checked >= 5 and not problems, problems
    assert win.live_panel.model_dir == win.session.active_model.path  # Live scores with the active model
    assert win.go_to_step(3)
    qtbot.waitUntil(lambda: win.review_panel.predictions is not None, timeout=120_000)
    assert win.go_to_step(5)
    record = next(r for r in win.session.dataset.test if r.is_anomalous)
    win.live_panel.open_result(LiveResult(1, "replay", str(record.path), Path(record.path), time.time(), "NG", 1.0))
    assert win.current_step() == "review"
    assert win.review_panel.current_key == label_key(win.session.dataset.root, record.path)
    frame = LiveResult(2, "camera", "frame 2", None, time.time(), "REVIEW", 0.5, image=np.zeros((8, 8, 3), np.uint8))
    win.live_panel.open_result(frame)  # not an image of the dataset: a closer look instead
    dialogs = win.live_panel.findChildren(LiveResultDialog)
    assert dialogs and dialogs[-1].result is frame
    dialogs[-1].close()
