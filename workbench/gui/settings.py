"""The user's application settings (device, CPU threads, theme), kept in QSettings.

Why one small module: the settings dialog writes them, the job runner reads them when it starts
a compute job, and the app applies the theme at start-up; all three go through
:func:`load_settings` / :func:`save_settings` so the keys and defaults are spelled once.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QSettings

DEVICES = ("auto", "cpu", "cuda")
THEMES = ("light", "dark")


@dataclass(frozen=True)
class AppSettings:
    """``device``: 'auto' (CUDA when available), 'cpu' or 'cuda'. ``cpu_threads``: torch threads
    for compute jobs; 0 means all cores. ``theme``: style sheet name."""

    device: str = "auto"
    cpu_threads: int = 0
    theme: str = "light"


def load_settings(settings: QSettings | None = None) -> AppSettings:
    """Stored values, each falling back to its default when missing or invalid."""
    store = settings or QSettings()
    default = AppSettings()
    device = str(store.value("compute/device", default.device))
    try:
        threads = int(store.value("compute/cpu_threads", default.cpu_threads))
    except (TypeError, ValueError):
        threads = default.cpu_threads
    theme = str(store.value("appearance/theme", default.theme))
    return AppSettings(device=device if device in DEVICES else default.device,
                       cpu_threads=max(0, threads),
                       theme=theme if theme in THEMES else default.theme)


def save_settings(values: AppSettings, settings: QSettings | None = None) -> None:
    store = settings or QSettings()
    store.setValue("compute/device", values.device)
    store.setValue("compute/cpu_threads", int(values.cpu_threads))
    store.setValue("appearance/theme", values.theme)
    store.sync()
