"""Entry point of the desktop application (``workbench gui`` and bare ``workbench``)."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType

import workbench
from workbench.package_data import APP_ICON, STYLE_SHEET, resource_path

APP_NAME = "Anomaly Inspection Workbench"
ORG_NAME = "Workbench"
ORG_DOMAIN = "workbench.local"


def style_sheet_path() -> Path:
    """``workbench/resources/style.qss`` (package data; optional: the app works without it)."""
    return resource_path(STYLE_SHEET)


def app_icon():
    """The application icon from the package resources (Qt's stock icon if it is missing)."""
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication, QStyle

    path = resource_path(APP_ICON)
    if path.is_file():
        return QIcon(str(path))
    return QApplication.style().standardIcon(QStyle.StandardPixmap.SP_FileDialogContentsView)


def load_style_sheet(theme: str = "light") -> str:
    """The style sheet of ``theme`` (see :mod:`workbench.gui.theme`)."""
    from workbench.gui.theme import load_style_sheet as theme_sheet

    return theme_sheet(theme)


def install_excepthook() -> None:
    """An exception escaping a slot goes to the log file and shows the error dialog instead of
    killing the app (or vanishing into a console the engineer never sees). An exception ending
    a plain Python thread goes to the log file too."""

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        details = "".join(traceback.format_exception(kind, exc, tb))
        logging.getLogger("workbench.gui").error("Unhandled exception\n%s", details)
        from PySide6.QtWidgets import QApplication

        from workbench.gui.logfile import current_log_file, flush_log_file
        from workbench.gui.widgets import errors

        flush_log_file()
        log_file = current_log_file()
        where = f" The details are also in the log file {log_file}." if log_file else ""
        errors.show_error(QApplication.activeWindow(), "Unexpected error",
                          f"{kind.__name__}: {exc}\n\nThe last action did not complete; your "
                          f"workspace is safe. Please report this with the details below.{where}", details)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        logging.getLogger("workbench.gui").error(
            "Unhandled exception in thread %s", args.thread.name if args.thread else "?",
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = hook
    threading.excepthook = thread_hook


def install_gui_thread_collector(app) -> None:
    """Python's garbage collector runs in the GUI thread only (see :mod:`.gc_in_gui_thread`); once per app."""
    from workbench.gui.gc_in_gui_thread import GuiThreadCollector, collect_garbage_in_gui_thread

    if app.findChild(GuiThreadCollector) is None:
        collect_garbage_in_gui_thread(app)


def create_application(argv: list[str]):
    """The QApplication with names (for QSettings), style sheet and light pyqtgraph defaults."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setOrganizationDomain(ORG_DOMAIN)
    app.setApplicationVersion(workbench.__version__)
    app.setStyle("Fusion")  # identical look on Windows, macOS and Linux; the QSS builds on it
    from workbench.gui.settings import load_settings
    from workbench.gui.theme import apply_theme

    apply_theme(load_settings().theme, app)  # the theme chosen in Settings, from the first window on
    app.setWindowIcon(app_icon())
    install_gui_thread_collector(app)
    import pyqtgraph as pg

    pg.setConfigOptions(background="w", foreground="#374151", antialias=True)
    return app


def configure_logging() -> Path | None:
    """Warnings to stderr (when there is a console), the workbench's INFO and up to the rotating
    log file in the user log folder (:mod:`workbench.gui.logfile`); returns the file's path."""
    from workbench.gui.logfile import setup_log_file

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("workbench").setLevel(logging.INFO)
    return setup_log_file()


def main(argv: list[str] | None = None) -> int:
    """Start the GUI. ``argv`` (without the program name) may hold a workspace folder to open.

    Torch's threads are not limited here: training and inference compute in a child process
    (:mod:`workbench.gui.workers`) with the thread count of the settings, and the GUI process
    keeps its own core by not computing at all."""
    import multiprocessing

    multiprocessing.freeze_support()  # a frozen bundle started as a compute child runs the child and exits
    configure_logging()
    args = list(sys.argv[1:] if argv is None else argv)
    app = create_application([sys.argv[0] if sys.argv else "workbench", *args])
    install_excepthook()
    from workbench.gui.main_window import MainWindow
    from workbench.gui.workers import prestart_compute_process

    workspace_arg = next((a for a in args if not a.startswith("-")), None)
    window = MainWindow(restore_last=workspace_arg is None)
    if workspace_arg:
        window.open_workspace(workspace_arg)
    window.show()
    prestart_compute_process()  # the first job's child imports torch while the user looks around
    return int(app.exec())


if __name__ == "__main__":
    raise SystemExit(main())
