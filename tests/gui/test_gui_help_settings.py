"""Help and Tools menus: the log file, the settings dialog (device, threads, theme) and the
keyboard-shortcut list generated from the window's own actions and shortcuts."""

from __future__ import annotations

import logging
import sys
import threading

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtGui import QPalette, QShortcut
from PySide6.QtWidgets import QApplication

from workbench.gui import logfile
from workbench.gui.settings import AppSettings, load_settings


def menu(window, title: str):
    (found,) = [a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == title]
    return found


@pytest.fixture
def log_dir(tmp_path):
    """The app's log file in tmp_path; the handler is removed afterwards."""
    folder = tmp_path / "logs"
    path = logfile.setup_log_file(folder)
    assert path == folder / logfile.LOG_FILE_NAME
    yield folder
    for handler in [h for h in logging.getLogger().handlers if isinstance(h, logfile.WorkbenchLogHandler)]:
        logging.getLogger().removeHandler(handler)
        handler.close()


@pytest.fixture
def opened_urls(monkeypatch) -> list[QUrl]:
    from workbench.gui import main_window

    urls: list[QUrl] = []
    monkeypatch.setattr(main_window.QDesktopServices, "openUrl", lambda url: urls.append(url) or True)
    return urls


@pytest.fixture
def light_theme_after():
    yield
    from workbench.gui.theme import apply_theme

    apply_theme("light")
    QApplication.instance().setStyleSheet("")  # as the other tests expect: unstyled


def test_show_log_file_opens_the_file_holding_the_last_log_line(window, log_dir, opened_urls):
    logging.getLogger("workbench.gui.test").warning("marker line 4711")
    assert window.act_log_file in menu(window, "Help").actions()
    window.act_log_file.trigger()
    assert len(opened_urls) == 1
    path = opened_urls[0].toLocalFile()
    assert path == str(log_dir / logfile.LOG_FILE_NAME)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert "marker line 4711" in text and "WARNING workbench.gui.test" in text


def test_log_file_set_up_is_idempotent_and_rotates(tmp_path, monkeypatch):
    monkeypatch.setattr(logfile, "MAX_BYTES", 2_000)
    root = logging.getLogger()
    try:
        path = logfile.setup_log_file(tmp_path)
        assert logfile.setup_log_file(tmp_path) == path
        assert sum(isinstance(h, logfile.WorkbenchLogHandler) for h in root.handlers) == 1
        for i in range(100):
            logging.getLogger("workbench.test").info("line %d %s", i, "x" * 40)
        logfile.flush_log_file()
        assert path.stat().st_size <= 2_000
        backups = sorted(p.name for p in tmp_path.iterdir() if p.name != path.name)
        assert backups == [f"{path.name}.{i}" for i in range(1, logfile.BACKUP_COUNT + 1)]
    finally:
        for handler in [h for h in root.handlers if isinstance(h, logfile.WorkbenchLogHandler)]:
            root.removeHandler(handler)
            handler.close()


def test_a_log_folder_that_cannot_be_written_leaves_the_app_without_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert logfile.setup_log_file(blocker / "logs") is None
    assert "no log file" in capsys.readouterr().err
    assert logfile.current_log_file() is None


def test_uncaught_exceptions_go_to_the_log_file_and_an_error_dialog(qapp, log_dir, shown_errors, monkeypatch):
    from workbench.gui.app import install_excepthook

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    install_excepthook()
    try:
        raise RuntimeError("boom in a slot")
    except RuntimeError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    worker = threading.Thread(target=lambda: 1 / 0, name="helper-thread")
    worker.start()
    worker.join()
    logfile.flush_log_file()
    text = (log_dir / logfile.LOG_FILE_NAME).read_text(encoding="utf-8")
    assert "RuntimeError: boom in a slot" in text and "Traceback" in text
    assert "helper-thread" in text and "ZeroDivisionError" in text
    (title, message, details), = shown_errors
    assert title == "Unexpected error" and "boom in a slot" in message
    assert str(log_dir / logfile.LOG_FILE_NAME) in message and "Traceback" in details


def test_settings_dialog_saves_through_the_settings_module_and_applies_the_theme(
        qtbot, window, settings, monkeypatch, light_theme_after):
    from workbench.gui.theme import load_style_sheet
    from workbench.gui.widgets import settings_dialog

    monkeypatch.setattr(settings_dialog, "cuda_available", lambda: False)
    seen = []

    def answer(dialog) -> bool:
        seen.append(dialog)
        cuda = dialog.device.model().item(dialog.device.findData("cuda"))
        assert not cuda.isEnabled()  # no GPU: listed, not selectable
        dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
        dialog.threads.setValue(1)
        dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
        dialog.accept()
        return True

    monkeypatch.setattr(type(window), "_exec", lambda self, dialog: answer(dialog))
    assert window.act_settings in menu(window, "Tools").actions()
    window.act_settings.trigger()
    assert seen
    assert load_settings(settings) == AppSettings(device="cpu", cpu_threads=1, theme="dark")
    app = QApplication.instance()
    assert app.styleSheet() == load_style_sheet("dark") and "#1d2026" in app.styleSheet()
    assert app.palette().color(QPalette.ColorRole.Window).lightness() < 60

    def cancel(dialog) -> bool:
        dialog.theme.setCurrentIndex(dialog.theme.findData("light"))
        dialog.reject()
        return False

    monkeypatch.setattr(type(window), "_exec", lambda self, dialog: cancel(dialog))
    window.act_settings.trigger()  # Cancel changes nothing
    assert load_settings(settings).theme == "dark" and app.styleSheet() == load_style_sheet("dark")


def test_the_dialog_starts_from_the_stored_values(qtbot, settings):
    from workbench.gui.settings import save_settings
    from workbench.gui.widgets.settings_dialog import SettingsDialog

    save_settings(AppSettings(device="cuda", cpu_threads=1, theme="dark"), settings)
    with_gpu = SettingsDialog(settings, has_cuda=True)
    qtbot.addWidget(with_gpu)
    assert with_gpu.values() == AppSettings(device="cuda", cpu_threads=1, theme="dark")
    without = SettingsDialog(settings, has_cuda=False)  # the GPU is gone: back to automatic
    qtbot.addWidget(without)
    assert without.values().device == "auto"


def test_the_saved_theme_is_applied_at_start_up(qapp, monkeypatch, light_theme_after):
    from workbench.gui import app as gui_app
    from workbench.gui import settings as gui_settings
    from workbench.gui.theme import current_theme, load_style_sheet

    names = qapp.applicationName(), qapp.organizationName(), qapp.organizationDomain()
    monkeypatch.setattr(gui_settings, "load_settings", lambda store=None: AppSettings(theme="dark"))
    try:
        gui_app.create_application([])
        assert current_theme() == "dark" and qapp.styleSheet() == load_style_sheet("dark")
    finally:
        qapp.setApplicationName(names[0])
        qapp.setOrganizationName(names[1])
        qapp.setOrganizationDomain(names[2])


def test_shortcut_list_is_generated_from_the_window(qtbot, window, monkeypatch):
    from workbench.gui.main_window import STEPS

    entries = window.shortcut_entries()
    rows = {(e.keys, e.where) for e in entries}
    for i in range(1, len(STEPS) + 1):  # every step key, usable everywhere
        assert (f"Ctrl+{i}", "Everywhere") in rows
    assert ("Ctrl+T", "Everywhere") in rows and ("Esc", "Everywhere") in rows
    for key in ("1", "2", "N", "P", "Right", "Left", *"3456789"):  # every Review key, in Review
        assert (key, "Review step") in rows, key
    assert all(e.action and e.action != "(no description)" for e in entries)
    train = next(e for e in entries if e.keys == "Ctrl+T")
    assert train.action.startswith("Run > Train")
    # generated, not a hand-written list: a new shortcut appears without touching the dialog
    extra = QShortcut("Ctrl+Alt+Q", window.review_panel)
    extra.setWhatsThis("A key added later")
    assert ("Ctrl+Alt+Q", "A key added later", "Review step") in {
        (e.keys, e.action, e.where) for e in window.shortcut_entries()}

    from workbench.gui.widgets.shortcuts_dialog import ShortcutsDialog

    shown = []
    monkeypatch.setattr(type(window), "_exec", lambda self, dialog: shown.append(dialog) or False)
    assert window.act_shortcuts in menu(window, "Help").actions()
    window.act_shortcuts.trigger()
    assert ("Ctrl+T", train.action, "Everywhere") in shown[0].rows()
    assert isinstance(shown[0], ShortcutsDialog) and len(shown[0].rows()) == len(window.shortcut_entries())
