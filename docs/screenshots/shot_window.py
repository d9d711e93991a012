"""The main window every screenshot script starts from, and the event pump they all use.

Why a module: each script needs the same window (its own settings file, filling the screen
below a title bar's height, as under a window manager) and the same way to let the window work
until a condition holds; one copy keeps the screenshots comparable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

TITLE_BAR = 38  # px left free at the top, where a window manager draws the title bar


def open_main_window(scratch: Path, argv: list[str]):
    """(app, window, pump): the application, its shown main window, and ``pump(seconds, until)``
    which processes events until ``until()`` is true (True) or the time is up (``until()``)."""
    from PySide6.QtCore import QSettings

    from workbench.gui.app import create_application
    from workbench.gui.main_window import MainWindow

    app = create_application(argv)
    win = MainWindow(QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat), restore_last=False)
    area = app.primaryScreen().availableGeometry()
    win.setGeometry(area.x(), area.y() + TITLE_BAR, area.width(), area.height() - TITLE_BAR)
    win.show()

    def pump(seconds: float, until: Callable[[], bool] = lambda: False) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            if until():
                return True
            time.sleep(0.02)
        return until()

    return app, win, pump


def open_sample(win, pump) -> bool:
    """Help > Open sample workspace, waited for until its model is active (False: it did not open)."""
    win.open_sample_workspace()
    return pump(300, lambda: win.session.active_model is not None and not win.jobs.active_count)
