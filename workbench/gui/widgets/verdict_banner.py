"""The station view's large OK / REVIEW / NG verdict, readable from a few metres away."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

# background, text: green / amber / red as on a stack light; grey before the first part
VERDICT_STYLE = {
    "OK": ("#1f9d3a", "#ffffff"),
    "REVIEW": ("#f0a500", "#1b1b1b"),
    "NG": ("#d62828", "#ffffff"),
    "error": ("#7b2cbf", "#ffffff"),
    "unreadable": ("#7b2cbf", "#ffffff"),
}
IDLE = ("#3a3f47", "#d0d4da")


class VerdictBanner(QLabel):
    """A coloured block with the verdict in large letters (its font grows with its height)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("—", parent)
        self.setObjectName("verdictBanner")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.verdict = ""
        self._apply()

    def set_verdict(self, verdict: str) -> None:
        self.verdict = verdict
        self.setText({"": "—", "unreadable": "UNREADABLE", "error": "ERROR"}.get(verdict, verdict))
        self._apply()

    def _apply(self) -> None:
        bg, fg = VERDICT_STYLE.get(self.verdict, IDLE)
        size = max(28, min(96, int(self.height() * 0.5)))
        self.setStyleSheet(f"QLabel#verdictBanner {{ background: {bg}; color: {fg}; border-radius: 8px; "
                           f"font-size: {size}px; font-weight: 800; letter-spacing: 2px; }}")

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._apply()
