"""The entry point: application names, style sheet, a workspace given on the command line."""

from __future__ import annotations

import sys

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

import workbench.gui.main_window as main_window
from workbench.gui import app as gui_app


def test_main_opens_the_given_workspace_and_exits_cleanly(qapp, tmp_path, monkeypatch, shown_errors):
    from workbench.core.workspace import Workspace

    Workspace.create(tmp_path / "ws").close()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    opened: list[object] = []

    class TestWindow(main_window.MainWindow):
        def __init__(self, restore_last: bool = True) -> None:
            super().__init__(settings, restore_last=restore_last)
            opened.append(self)

    monkeypatch.setattr(main_window, "MainWindow", TestWindow)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # main() installs its own; undo after

    def close_soon() -> None:
        window = opened[0]
        assert window.isVisible() and window.session.workspace is not None
        assert window.session.workspace.path == tmp_path / "ws"
        window.close()

    QTimer.singleShot(300, close_soon)
    assert gui_app.main([str(tmp_path / "ws")]) == 0
    assert opened and not opened[0].isVisible()
    assert QApplication.applicationName() == gui_app.APP_NAME
    assert QApplication.organizationName() == gui_app.ORG_NAME
    assert "QPushButton#primary" in qapp.styleSheet()
    assert shown_errors == []
