"""A large image view that keeps the aspect ratio and scales with the window."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget


class ImagePreview(QWidget):
    """Paints one image centred and scaled to fit (never cropped); shows a hint when empty."""

    def __init__(self, placeholder: str = "Select an image", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self._scaled: QPixmap | None = None
        self.placeholder = placeholder
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 160)

    def set_image(self, image: QImage | None) -> None:
        self._pixmap = QPixmap.fromImage(image) if image is not None and not image.isNull() else None
        self._scaled = None
        self.update()

    def set_message(self, text: str) -> None:
        """Clear the image and show ``text`` instead (e.g. why an image cannot be shown)."""
        self.placeholder = text
        self.set_image(None)

    def has_image(self) -> bool:
        return self._pixmap is not None

    def sizeHint(self) -> QSize:
        return QSize(420, 420)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self._scaled = None  # rescale lazily at the next paint, once per size
        super().resizeEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#f1f3f5"))
        if self._pixmap is None:
            painter.setPen(QColor("#6b7280"))
            painter.drawText(self.rect().adjusted(12, 12, -12, -12),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            return
        if self._scaled is None or self._scaled.size() != self._target_size():
            self._scaled = self._pixmap.scaled(self._target_size(), Qt.AspectRatioMode.KeepAspectRatio,
                                               Qt.TransformationMode.SmoothTransformation)
        rect = QRect(0, 0, self._scaled.width(), self._scaled.height())
        rect.moveCenter(self.rect().center())
        painter.drawPixmap(rect, self._scaled)

    def _target_size(self) -> QSize:
        assert self._pixmap is not None
        return self._pixmap.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
