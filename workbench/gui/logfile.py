"""The desktop app's rotating log file in the user log folder.

Why: a windowed app has no console, so its warnings and the tracebacks of unexpected errors
vanish; a support request needs them. Everything logged under the root logger (the
``workbench`` loggers, the excepthook's tracebacks) also goes to ``workbench.log`` in
``platformdirs.user_log_dir("workbench")`` (e.g. ``~/.local/state/workbench/log`` on Linux,
``%LOCALAPPDATA%\\workbench\\Logs`` on Windows), rotated at 1 MB with 3 old files kept.
No Qt here: the CLI's ``gui`` command sets the file up before Qt is imported.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

import platformdirs

APP_DIR_NAME = "workbench"
LOG_FILE_NAME = "workbench.log"
MAX_BYTES = 1_000_000
BACKUP_COUNT = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"

log = logging.getLogger(__name__)


class WorkbenchLogHandler(logging.handlers.RotatingFileHandler):
    """Marks the app's own file handler, so set-up is idempotent and the Help menu finds it."""


def default_log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_DIR_NAME, appauthor=False))


def current_log_file() -> Path | None:
    """The file the app logs to now (None before :func:`setup_log_file`)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, WorkbenchLogHandler):
            return Path(handler.baseFilename)
    return None


def setup_log_file(directory: Path | None = None, level: int = logging.INFO) -> Path | None:
    """Send the root logger's records (the workbench's from ``level`` up, other libraries' as the
    root logger passes them) to the rotating log file and return
    its path. Idempotent: a second call with the same folder keeps the first handler; another
    folder replaces it. A folder that cannot be written leaves the app without a log file (said
    on stderr), never without its window."""
    path = (directory or default_log_dir()) / LOG_FILE_NAME
    root = logging.getLogger()
    current = current_log_file()
    if current == path:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = WorkbenchLogHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8")
    except OSError as exc:
        print(f"workbench: no log file ({path}: {exc})", file=sys.stderr)
        return None
    for old in [h for h in root.handlers if isinstance(h, WorkbenchLogHandler)]:
        root.removeHandler(old)
        old.close()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(level)
    root.addHandler(handler)
    ours = logging.getLogger("workbench")  # other libraries stay at the root's level (warnings)
    if ours.getEffectiveLevel() > level:
        ours.setLevel(level)
    import workbench

    log.info("Anomaly Inspection Workbench %s started (Python %s); logging to %s",
             workbench.__version__, sys.version.split()[0], path)
    handler.flush()
    return path


def flush_log_file() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, WorkbenchLogHandler):
            handler.flush()
