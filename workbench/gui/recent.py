"""Recently opened workspaces, remembered in QSettings (per user, across sessions)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

RECENT_KEY = "workspaces/recent"
LAST_KEY = "workspaces/last"
MAX_RECENT = 8


def recent_workspaces(settings: QSettings) -> list[str]:
    value = settings.value(RECENT_KEY, [])
    if isinstance(value, str):  # QSettings returns a bare string for a one-item list
        value = [value]
    return [str(v) for v in (value or []) if v]


def add_recent(settings: QSettings, path: str | Path) -> list[str]:
    """Put ``path`` first (no duplicates, at most MAX_RECENT) and remember it as the last one."""
    text = str(Path(path))
    items = [text] + [p for p in recent_workspaces(settings) if p != text]
    settings.setValue(RECENT_KEY, items[:MAX_RECENT])
    settings.setValue(LAST_KEY, text)
    return items[:MAX_RECENT]


def remove_recent(settings: QSettings, path: str | Path) -> None:
    text = str(Path(path))
    settings.setValue(RECENT_KEY, [p for p in recent_workspaces(settings) if p != text])
    if settings.value(LAST_KEY) == text:
        settings.remove(LAST_KEY)


def last_workspace(settings: QSettings) -> str | None:
    value = settings.value(LAST_KEY)
    return str(value) if value else None
