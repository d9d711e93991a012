"""Light and dark themes: a style sheet from the package resources plus a matching palette.

Why both: the style sheet sets the app's own look (navigator, buttons, tables), but dialogs,
menus, check boxes and scroll bars draw from the Fusion palette, so a dark style sheet over the
light palette leaves white menus and black-on-dark text. Plots keep their white background in
both themes (they read like figures on paper, and their colours are chosen for white).
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from workbench.gui.settings import THEMES
from workbench.package_data import THEME_STYLE_SHEETS, resource_path

DARK_COLORS = {
    QPalette.ColorRole.Window: "#1d2026",
    QPalette.ColorRole.WindowText: "#e5e7eb",
    QPalette.ColorRole.Base: "#262a31",
    QPalette.ColorRole.AlternateBase: "#2a2e35",
    QPalette.ColorRole.ToolTipBase: "#2b3038",
    QPalette.ColorRole.ToolTipText: "#e5e7eb",
    QPalette.ColorRole.PlaceholderText: "#9ca3af",
    QPalette.ColorRole.Text: "#e5e7eb",
    QPalette.ColorRole.Button: "#2b3038",
    QPalette.ColorRole.ButtonText: "#e5e7eb",
    QPalette.ColorRole.BrightText: "#ffffff",
    QPalette.ColorRole.Highlight: "#2563eb",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#93c5fd",
    QPalette.ColorRole.Light: "#3a404a",
    QPalette.ColorRole.Midlight: "#323843",
    QPalette.ColorRole.Mid: "#2b3038",
    QPalette.ColorRole.Dark: "#15171b",
    QPalette.ColorRole.Shadow: "#000000",
}
DARK_DISABLED = {QPalette.ColorRole.WindowText: "#6b7280", QPalette.ColorRole.Text: "#6b7280",
                 QPalette.ColorRole.ButtonText: "#6b7280"}


def load_style_sheet(theme: str = "light") -> str:
    """The theme's style sheet from ``workbench/resources`` ('' when the file is missing: the
    app still works with Qt's own look)."""
    if theme not in THEMES:
        raise ValueError(f"Unknown theme {theme!r}; choose one of {', '.join(THEMES)}.")
    try:
        return resource_path(THEME_STYLE_SHEETS[theme]).read_text(encoding="utf-8")
    except OSError:
        return ""


def palette(theme: str, app: QApplication) -> QPalette:
    """Fusion's standard palette for 'light', a dark one for 'dark'."""
    base = app.style().standardPalette()
    if theme != "dark":
        return base
    for role, color in DARK_COLORS.items():
        base.setColor(role, QColor(color))
    for role, color in DARK_DISABLED.items():
        base.setColor(QPalette.ColorGroup.Disabled, role, QColor(color))
    return base


def apply_theme(theme: str, app: QApplication | None = None) -> None:
    """Switch every open window to ``theme`` at once (palette first, then the style sheet)."""
    app = app or QApplication.instance()
    sheet = load_style_sheet(theme)
    app.setPalette(palette(theme, app))
    app.setStyleSheet(sheet)
    app.setProperty("workbenchTheme", theme)


def current_theme(app: QApplication | None = None) -> str:
    """The theme last applied with :func:`apply_theme` ('light' before any)."""
    app = app or QApplication.instance()
    value = app.property("workbenchTheme") if app is not None else None
    return value if value in THEMES else "light"
