"""Paint the inspected area (an ignore region or a region of interest) over a test image.

Reuses the Review step's mask editing (:class:`MaskEditor` tools in a :class:`ReviewCanvas`):
brush, eraser and polygon, in the image's own pixel coordinates, which is what the inspection
policy stores. The dialog returns the area as drawn (:meth:`AreaEditorDialog.area`: the mask
plus the polygons' vertices, kept so the workspace stores polygons as polygons); the
Threshold step decides what to do with it.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QPushButton, QSlider,
                               QToolButton, QVBoxLayout, QWidget)

from workbench.core.calibration.area import InspectedArea
from workbench.gui.imaging import rgb_to_qimage
from workbench.gui.widgets.mask_editor import BRUSH, ERASER, POLYGON, VIEW, MaskEditor
from workbench.gui.widgets.review_frames import ReviewFrame
from workbench.gui.widgets.review_viewer import COMPOSITE, ReviewCanvas

TITLES = {"ignore": "Ignore region: never inspected (white in the stored mask)",
          "roi": "Region of interest: the only area inspected"}


class AreaEditorDialog(QDialog):
    """Modal editor of one binary mask at the image's size."""

    def __init__(self, image: np.ndarray, mask: np.ndarray | InspectedArea | None, kind: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Ignore region" if kind == "ignore" else "Region of interest")
        self.kind = kind
        h, w = image.shape[:2]
        if isinstance(mask, InspectedArea):
            self.start = mask if mask.shape == (h, w) else InspectedArea((h, w))
        else:
            self.start = InspectedArea.from_mask(mask) if mask is not None and mask.shape == (h, w) \
                else InspectedArea((h, w))
        mask = self.start.mask()
        self.new_polygons: list[list[tuple[float, float]]] = []
        self.editor = MaskEditor(self)
        self.canvas = ReviewCanvas(self.editor, COMPOSITE)
        self.canvas.set_frame(ReviewFrame("area", rgb_to_qimage(image), (h, w)))
        self.editor.set_image((h, w), mask if mask is not None else np.zeros((h, w), bool))
        self.editor.maskChanged.connect(self.canvas.refresh_mask)
        self.editor.polygonClosed.connect(self.new_polygons.append)
        self.canvas.refresh_mask()

        tools = QHBoxLayout()
        self.tool_group = QButtonGroup(self)
        self.tool_buttons: dict[str, QToolButton] = {}
        for tool, text, tip in ((BRUSH, "Brush", "Paint the area (left button)"),
                                (ERASER, "Eraser", "Erase"),
                                (POLYGON, "Polygon", "Click corners; double-click or Enter closes the polygon"),
                                (VIEW, "Pan", "Drag to pan, wheel to zoom")):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.setCheckable(True)
            button.clicked.connect(lambda _c=False, t=tool: self.editor.set_tool(t))
            self.tool_group.addButton(button)
            self.tool_buttons[tool] = button
            tools.addWidget(button)
        self.radius = QSlider(Qt.Orientation.Horizontal)
        self.radius.setRange(1, 200)
        self.radius.setValue(int(max(4, min(h, w) // 25)))
        self.radius.setToolTip("Brush radius (image pixels)")
        self.radius.valueChanged.connect(lambda v: self.editor.set_radius(float(v)))
        self.editor.set_radius(float(self.radius.value()))
        clear = QPushButton("Clear")
        clear.clicked.connect(self.editor.clear)
        tools.addWidget(QLabel("Radius"))
        tools.addWidget(self.radius, 1)
        tools.addWidget(clear)
        self.tool_buttons[BRUSH].setChecked(True)
        self.editor.set_tool(BRUSH)

        hint = QLabel(TITLES.get(kind, kind) + f". Painted on a {w}x{h} test image; images of another size "
                      "get the mask resized.")
        hint.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addLayout(tools)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(buttons)
        self.resize(760, 620)

    def mask(self) -> np.ndarray:
        """The painted mask (bool, image size)."""
        if self.editor.mask is None:
            return np.zeros(self.editor.shape or (1, 1), bool)
        return np.array(self.editor.mask, dtype=bool, copy=True)

    def area(self) -> InspectedArea:
        """The area as drawn: the mask and the polygons that still describe part of it (a
        polygon the eraser cut into is kept as pixels only)."""
        return self.start.with_mask(self.mask(), self.new_polygons)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        self.canvas.fit()
