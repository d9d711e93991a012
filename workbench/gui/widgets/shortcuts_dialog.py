"""Help > Keyboard shortcuts: a table generated from the window's own QActions and QShortcuts.

Why generated: a hand-written list drifts from the keys that really work. Each row is read
from a live object: an action's key, its menu path ("Run > Train") and status tip; a
QShortcut's key and its ``whatsThis`` text (set where the shortcut is made), and the step
page it belongs to, since a step's keys only work while that step is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QLabel, QMenu, QTableWidget, QTableWidgetItem,
    QVBoxLayout, QWidget,
)

EVERYWHERE = "Everywhere"


@dataclass(frozen=True)
class ShortcutEntry:
    keys: str  # e.g. "Ctrl+T" or "Right"; several bindings joined with " / "
    action: str
    where: str


def key_text(sequences: list[QKeySequence]) -> str:
    return " / ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in sequences if not s.isEmpty())


def _menu_path(action: QAction) -> str:
    """'Run > Train' for an action in a menu; its plain text when it is in none."""
    text = action.text().replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…").rstrip(".")
    for owner in action.associatedObjects():
        if isinstance(owner, QMenu) and owner.title():
            title = owner.title().replace("&", "")
            return f"{title} > {text}"
    return text


def _where(widget: QObject | None, pages: dict[QWidget, str]) -> str:
    """The step whose page holds ``widget`` (its keys work only there), else everywhere."""
    while widget is not None:
        if widget in pages:
            return f"{pages[widget]} step"
        widget = widget.parent()
    return EVERYWHERE


def collect_shortcuts(window: QWidget, pages: dict[QWidget, str]) -> list[ShortcutEntry]:
    """Every action with a key and every shortcut under ``window``; window-wide ones first."""
    entries: list[ShortcutEntry] = []
    for action in window.findChildren(QAction):
        keys = key_text(action.shortcuts())
        if keys:
            tip = action.statusTip()
            name = _menu_path(action)
            entries.append(ShortcutEntry(keys, f"{name}: {tip}" if tip else name, _where(action.parent(), pages)))
    for shortcut in window.findChildren(QShortcut):
        keys = key_text(shortcut.keys())
        if keys:
            entries.append(ShortcutEntry(keys, shortcut.whatsThis() or "(no description)",
                                         _where(shortcut.parent(), pages)))
    order = {EVERYWHERE: 0}
    return sorted(entries, key=lambda e: (order.get(e.where, 1), e.where))


class ShortcutsDialog(QDialog):
    def __init__(self, entries: list[ShortcutEntry], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.entries = entries
        self.table = QTableWidget(len(entries), 3)
        self.table.setObjectName("shortcutTable")
        self.table.setHorizontalHeaderLabels(["Keys", "Does", "Works in"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        for row, entry in enumerate(entries):
            for col, text in enumerate((entry.keys, entry.action, entry.where)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                self.table.setItem(row, col, item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        note = QLabel("A step's keys work while that step is shown; the others work everywhere.")
        note.setObjectName("hint")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.resize(780, 560)  # fits a 1366 x 768 screen with room to spare

    def rows(self) -> list[tuple[str, str, str]]:
        """The table's text, row by row (what the user reads)."""
        return [tuple(self.table.item(r, c).text() for c in range(3)) for r in range(self.table.rowCount())]
