"""Score against the thresholds: OK / REVIEW / NG bands and a marker at the current score."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from workbench.gui.widgets.verdict_banner import VERDICT_STYLE


class ScoreGauge(QWidget):
    """A horizontal bar from half the NG threshold to one and a half times it (raw units):
    green below the OK threshold (or the NG threshold without a band), amber in the REVIEW
    band, red from the NG threshold; the marker is clamped to the ends."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(26)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.ng: float | None = None
        self.ok: float | None = None
        self.score: float | None = None

    def set_thresholds(self, ng: float | None, ok: float | None) -> None:
        self.ng, self.ok = ng, ok
        self.update()

    def set_score(self, score: float | None) -> None:
        self.score = score
        self.update()

    def span(self) -> tuple[float, float]:
        ng = float(self.ng or 1.0)
        width = abs(ng) * 0.5 or 1.0
        return ng - width, ng + width

    def position(self, value: float) -> float:
        """Fraction (0..1) of the bar's width where ``value`` lies."""
        lo, hi = self.span()
        return min(1.0, max(0.0, (value - lo) / (hi - lo)))

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        bar = QRectF(0, 6, w, h - 12)
        if self.ng is None:
            painter.fillRect(bar, QColor("#555b63"))
            return
        x_ng = self.position(self.ng) * w
        x_ok = self.position(self.ok) * w if self.ok is not None else x_ng
        painter.fillRect(QRectF(0, bar.y(), x_ok, bar.height()), QColor(VERDICT_STYLE["OK"][0]))
        painter.fillRect(QRectF(x_ok, bar.y(), x_ng - x_ok, bar.height()), QColor(VERDICT_STYLE["REVIEW"][0]))
        painter.fillRect(QRectF(x_ng, bar.y(), w - x_ng, bar.height()), QColor(VERDICT_STYLE["NG"][0]))
        if self.score is not None:
            x = self.position(self.score) * w
            painter.setPen(QPen(QColor("#ffffff"), 4))
            painter.drawLine(int(x), 0, int(x), h)
            painter.setPen(QPen(QColor("#111111"), 2))
            painter.drawLine(int(x), 0, int(x), h)
        painter.end()
