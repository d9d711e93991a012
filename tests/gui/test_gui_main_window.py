"""Main window: first-run screen, workflow navigation, shortcuts, recent list, status bar."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest

from workbench.gui import recent
from workbench.gui.main_window import STEPS, MainWindow


def test_first_run_screen_without_workspace(window):
    assert window.stack.currentWidget() is window.first_run
    assert window.first_run.sample_button.isVisible()
    assert not window.go_to_step(0)  # nothing to show before a workspace is open
    assert all(not window.navigator.item(r).flags() & Qt.ItemFlag.ItemIsEnabled for r in range(len(STEPS)))
    assert window.device_label.text().startswith(("CPU (", "GPU"))
    assert window.jobs_label.text() == "No background jobs"
    assert window.model_label.text() == "No active model"


def test_steps_shortcuts_and_later_steps(qtbot, ws_window):
    assert ws_window.current_step() == "dataset"
    QTest.keyClick(ws_window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert ws_window.current_step() == "training"
    QTest.keyClick(ws_window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert ws_window.current_step() == "dataset"
    QTest.keyClick(ws_window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert ws_window.current_step() == "threshold"
    QTest.keyClick(ws_window, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert ws_window.current_step() == "review"
    QTest.keyClick(ws_window, Qt.Key.Key_5, Qt.KeyboardModifier.ControlModifier)
    assert ws_window.current_step() == "export"  # every step has its panel now (Export since #17)
    for row, step in enumerate(STEPS):
        enabled = bool(ws_window.navigator.item(row).flags() & Qt.ItemFlag.ItemIsEnabled)
        assert enabled == step.available
    shortcuts = {a.shortcut().toString() for a in ws_window.actions()}
    assert {"Ctrl+T", "Esc", "Ctrl+I", "Ctrl+1", "Ctrl+5"} <= shortcuts
    assert QKeySequence(QKeySequence.StandardKey.New).toString() in shortcuts


def test_recent_workspaces_geometry_and_reopen(qtbot, settings, tmp_path, shown_errors, app_dirs, monkeypatch):
    monkeypatch.setattr(MainWindow, "confirm", lambda self, title, question: True)
    win = MainWindow(settings, restore_last=False)
    qtbot.addWidget(win)
    a = win.open_workspace(tmp_path / "a", create=True).path
    b = win.open_workspace(tmp_path / "b", create=True).path
    assert recent.recent_workspaces(settings)[:2] == [str(b), str(a)]
    assert win.open_workspace(tmp_path / "missing") is None
    assert shown_errors and "does not exist" in shown_errors[-1][1]
    assert win.session.workspace.path == b  # a failed open keeps the current one
    win.show()
    win.close()
    saved = settings.value("window/geometry")
    assert saved is not None and saved == win.saveGeometry()
    again = MainWindow(settings, restore_last=True)
    qtbot.addWidget(again)
    assert again.session.workspace is not None and again.session.workspace.path == b
    assert again.restoreGeometry(saved)  # the offscreen screen clamps sizes, so check the bytes
    again.recent_menu.aboutToShow.emit()
    assert [act.text() for act in again.recent_menu.actions()][:2] == [str(b), str(a)]
    again.close()


def test_new_workspace_refuses_non_empty_folder(ws_window, tmp_path, shown_errors):
    folder = tmp_path / "stuff"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert ws_window.open_workspace(folder, create=True) is None
    assert "not empty" in shown_errors[-1][1]
