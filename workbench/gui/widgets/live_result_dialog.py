"""A closer look at one live result: the image with its heat map and outline, or without."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from workbench.gui.widgets.live_image import LiveImage


def describe(result) -> str:
    when = datetime.fromtimestamp(result.wall_time).strftime("%H:%M:%S")
    score = "" if result.score is None else f", score {result.score:.4g}"
    area = f", {result.regions} region(s), {result.defect_area_px} px" if result.regions else ""
    return f"<b>{result.verdict}</b>{score}{area} · {when} · {result.latency_ms:.0f} ms<br>{result.name}"


class LiveResultDialog(QDialog):
    def __init__(self, result, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result = result
        self.setWindowTitle(f"{result.verdict}: {result.name}")
        self.resize(900, 700)
        self.image = LiveImage()
        self.overlay = QCheckBox("Heat map and outline")
        self.overlay.setChecked(True)
        self.overlay.toggled.connect(self._show)
        info = QLabel(describe(result))
        info.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(info)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.overlay)
        layout.addWidget(buttons)
        self._show()

    def _show(self) -> None:
        r = self.result
        self.image.set_image(r.view if self.overlay.isChecked() and r.view is not None else r.image)
