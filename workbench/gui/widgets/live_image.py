"""The current live image (heat map and defect outline already drawn by the core), scaled to fit."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from workbench.gui.imaging import rgb_to_qimage


class LiveImage(QLabel):
    """Shows an RGB array as large as the widget allows, keeping its aspect ratio."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("liveImage")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(QSize(240, 180))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setStyleSheet("QLabel#liveImage { background: #20242a; color: #9aa3ad; }")
        self._pixmap: QPixmap | None = None
        self.setText("No image yet")

    def set_image(self, rgb: np.ndarray | None) -> None:
        self._pixmap = QPixmap.fromImage(rgb_to_qimage(rgb)) if rgb is not None else None
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is None:
            self.setPixmap(QPixmap())
            return
        self.setPixmap(self._pixmap.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._rescale()
