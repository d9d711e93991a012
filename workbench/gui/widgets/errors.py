"""The one error dialog of the application.

Every failure (a worker that raised, a workspace that cannot be opened, an uncaught
exception in a slot) goes through :func:`show_error`, so errors are never swallowed and
tests can patch a single function to record them instead of blocking on a modal dialog.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

log = logging.getLogger(__name__)


def show_error(parent: QWidget | None, title: str, message: str, details: str = "") -> QMessageBox:
    """Show ``message`` (what went wrong and what to do) with the traceback under "Show Details".

    Opened non-blocking (``open()``) so a failing background job cannot stall the event
    loop or other jobs' progress while the dialog waits for the user.
    """
    log.error("%s: %s", title, message)
    box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok, parent)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if details:
        box.setDetailedText(details)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
