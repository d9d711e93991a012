"""The mask being edited for the current image, and the tools that change it.

:class:`MaskEditor` owns one boolean (H, W) mask at image resolution and turns tool input
(in scene coordinates, where image pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``) into core
mask operations (:mod:`workbench.core.labels.editing`). Views only forward mouse positions
and repaint on :attr:`maskChanged`. Every completed edit (a stroke, a polygon, a fill, clear)
is reported once through :attr:`editFinished` with the mask before and after, which the
review panel turns into an undoable command that saves the PNG.

:func:`mask_qimage` shows a mask without copying it: a bool array is one byte per pixel,
viewed as an 8-bit indexed image with a two-colour table.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QColor, QImage

from workbench.core.labels import fill_from_map, fill_polygon, paint_stroke

VIEW, BRUSH, ERASER, POLYGON, FILL = "view", "brush", "eraser", "polygon", "fill"
TOOLS = (VIEW, BRUSH, ERASER, POLYGON, FILL)
MIN_RADIUS, MAX_RADIUS = 0.5, 200.0


def mask_qimage(mask: np.ndarray, on: QColor, off: QColor = QColor(0, 0, 0, 0)) -> QImage:
    """An 8-bit indexed QImage sharing ``mask``'s memory (keep the array alive; call
    ``.copy()`` to detach). ``on`` / ``off`` may be transparent."""
    data = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    h, w = data.shape
    image = QImage(data.data, w, h, data.strides[0], QImage.Format.Format_Indexed8)
    image.setColorTable([off.rgba(), on.rgba()])
    image._keep = data  # type: ignore[attr-defined]  # the buffer must outlive the image
    return image


class MaskEditor(QObject):
    maskChanged = Signal()  # pixels changed (also live, during a stroke)
    editFinished = Signal(object, object)  # (mask before, mask after) of one completed edit
    polygonChanged = Signal()  # the polygon being drawn changed
    polygonClosed = Signal(object)  # a filled polygon's vertices [(x, y), ...] in image pixel coordinates
    toolChanged = Signal(str)
    radiusChanged = Signal(float)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tool = VIEW
        self.radius = 6.0  # brush radius in image pixels
        self.shape: tuple[int, int] | None = None
        self.mask: np.ndarray | None = None
        self.amap: np.ndarray | None = None
        self.threshold: float | None = None
        self.polygon: list[tuple[float, float]] = []  # scene points of the polygon being drawn
        self._before: np.ndarray | None = None
        self._last: tuple[float, float] | None = None
        self.enabled = True

    # ------------------------------------------------------------------ state
    def set_image(self, shape: tuple[int, int] | None, mask: np.ndarray | None,
                  amap: np.ndarray | None = None, threshold: float | None = None) -> None:
        """Start editing a new image (``mask`` None: no mask yet). Drops a half-drawn polygon."""
        self.shape = tuple(shape) if shape is not None else None  # type: ignore[assignment]
        self.mask = None if mask is None else np.array(mask, dtype=bool, copy=True)
        self.amap, self.threshold = amap, threshold
        self._before, self._last = None, None
        self.polygon = []
        self.polygonChanged.emit()
        self.maskChanged.emit()

    def replace_mask(self, mask: np.ndarray | None) -> None:
        """Show ``mask`` (undo/redo of the current image) without reporting an edit."""
        self.mask = None if mask is None else np.array(mask, dtype=bool, copy=True)
        self.maskChanged.emit()

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        if tool != self.tool:
            self.cancel_polygon()
            self.tool = tool
            self.toolChanged.emit(tool)

    def set_radius(self, radius: float) -> None:
        radius = float(min(MAX_RADIUS, max(MIN_RADIUS, radius)))
        if radius != self.radius:
            self.radius = radius
            self.radiusChanged.emit(radius)

    @property
    def can_edit(self) -> bool:
        return self.enabled and self.shape is not None

    def _ensure_mask(self) -> np.ndarray:
        if self.mask is None:
            assert self.shape is not None
            self.mask = np.zeros(self.shape, bool)
        return self.mask

    def _finish(self, before: np.ndarray | None) -> bool:
        after = self.mask
        if after is None:
            return False
        if before is None:
            before = np.zeros_like(after)
        if np.array_equal(before, after):
            return False
        self.editFinished.emit(before, after.copy())
        return True

    @staticmethod
    def _pixel(x: float, y: float) -> tuple[float, float]:
        return x - 0.5, y - 0.5  # scene -> pixel-index coordinates (centres at integers)

    # ------------------------------------------------------------------ brush / eraser
    def press(self, x: float, y: float) -> None:
        """Left button down at scene point (x, y)."""
        if not self.can_edit:
            return
        if self.tool in (BRUSH, ERASER):
            self._before = None if self.mask is None else self.mask.copy()
            self._last = self._pixel(x, y)
            paint_stroke(self._ensure_mask(), [self._last], self.radius, self.tool == BRUSH)
            self.maskChanged.emit()
        elif self.tool == POLYGON:
            self.polygon.append((x, y))
            self.polygonChanged.emit()
        elif self.tool == FILL:
            self.fill_at(x, y)

    def move(self, x: float, y: float) -> None:
        """Mouse moved with the left button held."""
        if self._last is None or self.mask is None or self.tool not in (BRUSH, ERASER):
            return
        point = self._pixel(x, y)
        paint_stroke(self.mask, [self._last, point], self.radius, self.tool == BRUSH)
        self._last = point
        self.maskChanged.emit()

    def release(self) -> bool:
        """Left button up: one brush / eraser stroke is complete. True if it changed pixels."""
        if self._last is None:
            return False
        self._last = None
        before, self._before = self._before, None
        return self._finish(before)

    def stroke(self, points: list[tuple[float, float]]) -> bool:
        """A whole stroke through scene points (scripts and tests)."""
        if not points:
            return False
        self.press(*points[0])
        for p in points[1:]:
            self.move(*p)
        return self.release()

    # ------------------------------------------------------------------ polygon
    def close_polygon(self) -> bool:
        """Fill the drawn polygon (eraser semantics never apply: polygons add)."""
        points, self.polygon = self.polygon, []
        self.polygonChanged.emit()
        if len(points) < 3 or not self.can_edit:
            return False
        before = None if self.mask is None else self.mask.copy()
        vertices = [self._pixel(*p) for p in points]
        fill_polygon(self._ensure_mask(), vertices, True)
        self.maskChanged.emit()
        self.polygonClosed.emit(vertices)
        return self._finish(before)

    def cancel_polygon(self) -> None:
        if self.polygon:
            self.polygon = []
            self.polygonChanged.emit()

    # ------------------------------------------------------------------ whole-mask tools
    def fill_at(self, x: float, y: float) -> bool:
        """Add the model's thresholded blob under scene point (x, y)."""
        return self._fill(self._pixel(x, y))

    def fill_from_heatmap(self) -> bool:
        """Add the whole thresholded model region (the seed for a quick mask)."""
        return self._fill(None)

    def _fill(self, seed) -> bool:
        if not self.can_edit or self.amap is None or self.threshold is None:
            return False
        before = None if self.mask is None else self.mask.copy()
        fill_from_map(self._ensure_mask(), self.amap, self.threshold, seed)
        self.maskChanged.emit()
        return self._finish(before)

    def clear(self) -> bool:
        """Erase every pixel (the reviewed mask becomes empty: "no defect pixels")."""
        if not self.can_edit or self.mask is None or not self.mask.any():
            return False
        before = self.mask.copy()
        self.mask[:] = False
        self.maskChanged.emit()
        return self._finish(before)
