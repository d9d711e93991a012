"""The review viewer: a zoomable, pannable image with the anomaly map as a coloured overlay,
outlines of the model's thresholded region and of the ground-truth mask, and mask editing.

:class:`ReviewCanvas` is one QGraphicsView over layers in image coordinates (one scene unit
= one image pixel). :class:`ReviewViewer` holds four canvases: one composite view, side by
side image | heat map | mask, or - for reconstruction methods - input | reconstruction |
residual, with zoom and pan kept in sync.

Input: wheel zooms around the cursor, left-drag pans with the view tool, middle-drag always
pans; with a mask tool the left button draws (see :class:`MaskEditor`).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPainterPath, QPen, QPixmap, QPolygonF, QWheelEvent
from PySide6.QtWidgets import (
    QFrame, QGraphicsEllipseItem, QGraphicsItem, QGraphicsPathItem, QGraphicsPixmapItem, QGraphicsScene,
    QGraphicsView, QHBoxLayout, QLabel, QStyleOptionGraphicsItem, QVBoxLayout, QWidget,
)

from workbench.core.labels import mask_contours
from workbench.gui.widgets.mask_editor import BRUSH, ERASER, POLYGON, VIEW, MaskEditor, mask_qimage
from workbench.gui.widgets.review_frames import ReviewFrame, contours_path

REGION_COLOR = QColor("#ffd60a")  # the model's thresholded region
TRUTH_COLOR = QColor("#ff2bd6")  # the ground-truth / reviewed mask
MASK_FILL = QColor(255, 43, 214, 80)
DRAFT_COLOR = QColor("#00e5ff")
BACKGROUND = QColor("#2b2f36")
MIN_ZOOM, MAX_ZOOM = 0.02, 64.0

COMPOSITE, IMAGE, HEAT, MASK = "composite", "image", "heat", "mask"
RECON, RESIDUAL = "reconstruction", "residual"  # the reconstruction view's own panes
ROLE_TITLES = {COMPOSITE: "", IMAGE: "Image", HEAT: "Anomaly map", MASK: "Mask",
               RECON: "Reconstruction", RESIDUAL: "Residual (anomaly map)"}
OVERLAY_MODE, RECONSTRUCTION_MODE = "overlay", "reconstruction"


class PixmapLayer(QGraphicsPixmapItem):
    """An RGB32 image layer: ``QPixmap.fromImage`` of an RGB32 QImage shares its pixels on
    raster platforms, so showing a frame prepared in the pool thread copies nothing, and
    painting stays in C++ (no Python, no GIL wait while a prefetch runs)."""

    def __init__(self, z: float = 0.0) -> None:
        super().__init__()
        self.smooth = True
        self.setZValue(z)
        self.setTransformationMode(Qt.TransformationMode.SmoothTransformation)

    def set_image(self, image: QImage | None) -> None:
        self.setPixmap(QPixmap.fromImage(image) if image is not None and not image.isNull() else QPixmap())

    def set_smooth(self, smooth: bool) -> None:
        self.smooth = smooth
        self.setTransformationMode(Qt.TransformationMode.SmoothTransformation if smooth
                                   else Qt.TransformationMode.FastTransformation)


class ImageLayer(QGraphicsItem):
    """Draws a QImage at scene (0, 0), one unit per pixel, converting nothing when it
    changes: the indexed mask image shares the editor's array, so a brush stroke only needs
    :meth:`update`."""

    def __init__(self, z: float = 0.0) -> None:
        super().__init__()
        self.image: QImage | None = None
        self.smooth = True
        self.setZValue(z)

    def set_image(self, image: QImage | None) -> None:
        if image is not None and image.isNull():
            image = None
        old = self.image
        if (old is None) != (image is None) or (old is not None and image is not None and old.size() != image.size()):
            self.prepareGeometryChange()
        self.image = image
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        return QRectF(0, 0, self.image.width(), self.image.height()) if self.image is not None else QRectF()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        if self.image is None:
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
        exposed = option.exposedRect.intersected(self.boundingRect()).toAlignedRect()
        if exposed.isEmpty():
            return
        painter.drawImage(QRectF(exposed), self.image, QRectF(exposed))


def outline_item(color: QColor, z: float, width: float = 2.0) -> QGraphicsPathItem:
    item = QGraphicsPathItem()
    pen = QPen(color, width)
    pen.setCosmetic(True)  # same on-screen width at every zoom
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    item.setPen(pen)
    item.setBrush(Qt.BrushStyle.NoBrush)
    item.setZValue(z)
    return item


class ReviewCanvas(QGraphicsView):
    """One view of the current image. ``role`` picks the layers it shows."""

    viewChanged = Signal()  # zoom or scroll position changed
    pointClicked = Signal(float, float)  # a left click (not a drag) in view mode, in image pixels

    def __init__(self, editor: MaskEditor, role: str = COMPOSITE, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        self._click_start: QPointF | None = None
        self.role = role
        self.fitted = False  # showing the whole image (refit on resize) until the user zooms
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(BACKGROUND)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setMouseTracking(True)
        self.setMinimumSize(120, 120)
        scene = self.scene()
        self.image_item = PixmapLayer(0)
        self.recon_item = PixmapLayer(0)  # the model's reconstruction (RECON role only)
        self.heat_item = PixmapLayer(1)
        self.mask_item = ImageLayer(2)
        self.mask_item.smooth = False  # edited pixels stay crisp
        self.mask_item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.region_item = outline_item(REGION_COLOR, 3)
        self.truth_item = outline_item(TRUTH_COLOR, 4)
        self.draft_item = outline_item(DRAFT_COLOR, 5, 1.5)
        self.cursor_item = QGraphicsEllipseItem()
        cursor_pen = QPen(QColor("white"), 1)
        cursor_pen.setCosmetic(True)
        self.cursor_item.setPen(cursor_pen)
        self.cursor_item.setZValue(6)
        self.cursor_item.setVisible(False)
        for item in (self.image_item, self.recon_item, self.heat_item, self.mask_item, self.region_item,
                     self.truth_item, self.draft_item, self.cursor_item):
            scene.addItem(item)
        self.frame: ReviewFrame | None = None
        self.residual: QImage | None = None  # the map to show when the frame has none
        self.overlay_visible = True
        self.opacity = 0.5
        self.show_region = True
        self.show_truth = True
        self.show_fill = True
        self._panning: QPointF | None = None
        self._drawing = False
        self._mouse_scene: QPointF | None = None
        self._mask_array: np.ndarray | None = None  # the array the mask layer's image shares
        self.set_role(role)
        editor.toolChanged.connect(lambda _t: self._update_drag_mode())
        editor.polygonChanged.connect(self._update_draft)
        editor.radiusChanged.connect(lambda _r: self._update_cursor())
        self._update_drag_mode()

    # ------------------------------------------------------------------ content
    def set_role(self, role: str) -> None:
        self.role = role
        self._mask_array = None
        self._apply_visibility()
        self.refresh_mask()

    def set_frame(self, frame: ReviewFrame | None) -> None:
        """Show ``frame``'s image, heat map and model outline (the mask comes from the editor)."""
        self.frame = frame
        self.residual = None
        self.recon_item.set_image(None)
        if frame is None:
            for item in (self.image_item, self.heat_item, self.mask_item):
                item.set_image(None)
            self._mask_array = None
            self.region_item.setPath(QPainterPath())
            self.truth_item.setPath(QPainterPath())
            return
        self.image_item.set_image(frame.image)
        self.heat_item.set_image(frame.heat)
        self.region_item.setPath(frame.region_path)
        h, w = frame.shape
        self.scene().setSceneRect(QRectF(0, 0, w, h))
        self._apply_visibility()

    def set_reconstruction(self, image: QImage | None, residual: QImage | None = None) -> None:
        """The reconstruction of the frame's image (at image size) and, when the frame has no
        map of its own, the map to show as residual."""
        self.recon_item.set_image(image)
        self.residual = residual
        if self.frame is not None and self.frame.heat is None:
            self.heat_item.set_image(residual)
        self._apply_visibility()

    def set_overlay(self, visible: bool | None = None, opacity: float | None = None) -> None:
        if visible is not None:
            self.overlay_visible = visible
        if opacity is not None:
            self.opacity = float(opacity)
        self._apply_visibility()

    def set_outlines(self, region: bool | None = None, truth: bool | None = None) -> None:
        if region is not None:
            self.show_region = region
        if truth is not None:
            self.show_truth = truth
        self._apply_visibility()

    def _apply_visibility(self) -> None:
        has_heat = self.frame is not None and (self.frame.heat is not None or self.residual is not None)
        self.recon_item.setVisible(self.role == RECON)
        if self.role == RESIDUAL:  # the map itself, opaque: what the model found different
            self.heat_item.setVisible(has_heat)
            self.heat_item.setOpacity(1.0)
        elif self.role == HEAT:
            self.heat_item.setVisible(has_heat)
            self.heat_item.setOpacity(self.opacity if self.overlay_visible else 1.0)
        else:
            self.heat_item.setVisible(has_heat and self.role == COMPOSITE and self.overlay_visible)
            self.heat_item.setOpacity(self.opacity)
        self.image_item.setVisible(self.role in (COMPOSITE, IMAGE, HEAT))
        self.mask_item.setVisible(self.role == MASK or (self.role == COMPOSITE and self.show_fill))
        self.region_item.setVisible(self.show_region)
        self.truth_item.setVisible(self.show_truth and self.role != MASK)

    def refresh_mask(self, outline: bool | QPainterPath = True) -> None:
        """Show the editor's mask. ``outline``: recompute its outline (skipped during a
        stroke for speed), or a ready path for it. The layer's image shares the mask array,
        so pixels painted in place only need a repaint."""
        mask = self.editor.mask
        if mask is None or self.frame is None or mask.shape != self.frame.shape:
            self._mask_array = None
            if self.role == MASK and self.frame is not None:
                h, w = self.frame.shape
                blank = QImage(w, h, QImage.Format.Format_RGB32)
                blank.fill(QColor("black"))
                self.mask_item.set_image(blank)
            else:
                self.mask_item.set_image(None)
            if outline is not False:
                self.truth_item.setPath(QPainterPath())
            return
        if mask is not self._mask_array:
            self._mask_array = mask
            self.mask_item.set_image(mask_qimage(mask, QColor("white"), QColor("black")) if self.role == MASK
                                     else mask_qimage(mask, MASK_FILL))
        else:
            self.mask_item.update()
        if isinstance(outline, QPainterPath):
            self.truth_item.setPath(outline)
        elif outline:
            self.truth_item.setPath(contours_path(mask_contours(mask)))

    # ------------------------------------------------------------------ zoom / pan
    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, zoom: float, anchor_view: QPointF | None = None) -> None:
        self.fitted = False  # the user's zoom: kept through resizes
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        factor = zoom / self.zoom
        if anchor_view is None:
            old = self.transformationAnchor()
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
            self.scale(factor, factor)
            self.setTransformationAnchor(old)
        else:
            self.scale(factor, factor)
        self._update_smoothing()
        self.viewChanged.emit()

    def fit(self) -> None:
        rect = self.scene().sceneRect()
        if rect.isEmpty():
            return
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self.fitted = True
        self._update_smoothing()
        self.viewChanged.emit()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        """A fitted image stays fitted when the view changes size (splitter, window, layout)."""
        super().resizeEvent(event)
        if self.fitted:
            self.fit()

    def actual_size(self) -> None:
        """1:1 - one image pixel per screen pixel, keeping the centre."""
        self.set_zoom(1.0)

    def _update_smoothing(self) -> None:
        # Past 2x show real pixels (what you edit), below keep it smooth.
        smooth = self.zoom < 2.0
        if smooth != self.image_item.smooth:
            self.image_item.set_smooth(smooth)
            self.recon_item.set_smooth(smooth)
            self.heat_item.set_smooth(smooth)

    def center(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt API)
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.set_zoom(self.zoom * (1.25 ** steps), event.position())
        event.accept()

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802 (Qt API)
        super().scrollContentsBy(dx, dy)
        self.viewChanged.emit()

    # ------------------------------------------------------------------ mouse
    def _update_drag_mode(self) -> None:
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag if self.editor.tool == VIEW
                         else QGraphicsView.DragMode.NoDrag)
        self.viewport().setCursor(Qt.CursorShape.OpenHandCursor if self.editor.tool == VIEW
                                  else Qt.CursorShape.CrossCursor)
        self._update_cursor()
        self._update_draft()

    def _update_cursor(self) -> None:
        pos = self._mouse_scene
        show = self.editor.tool in (BRUSH, ERASER) and pos is not None and self.frame is not None
        self.cursor_item.setVisible(show)
        if show:
            r = self.editor.radius + 0.5
            self.cursor_item.setRect(QRectF(pos.x() - r, pos.y() - r, 2 * r, 2 * r))

    def _update_draft(self) -> None:
        points = list(self.editor.polygon)
        path = QPainterPath()
        if points and self.editor.tool == POLYGON:
            if self._mouse_scene is not None:
                points.append((self._mouse_scene.x(), self._mouse_scene.y()))
            path.addPolygon(QPolygonF([QPointF(x, y) for x, y in points]))
        self.draft_item.setPath(path)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if event.button() == Qt.MouseButton.MiddleButton:
            self._panning = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton and self.editor.tool != VIEW and self.frame is not None:
            p = self.mapToScene(event.position().toPoint())
            self._drawing = True
            self.editor.press(p.x(), p.y())
            event.accept()
            return
        if event.button() == Qt.MouseButton.RightButton and self.editor.tool == POLYGON:
            self.editor.cancel_polygon()
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton:
            self._click_start = event.position()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        self._mouse_scene = self.mapToScene(event.position().toPoint())
        if self._panning is not None:
            delta = event.position() - self._panning
            self._panning = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - round(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - round(delta.y()))
            event.accept()
            return
        self._update_cursor()
        if self.editor.tool == POLYGON:
            self._update_draft()
        if self._drawing and event.buttons() & Qt.MouseButton.LeftButton:
            self.editor.move(self._mouse_scene.x(), self._mouse_scene.y())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if event.button() == Qt.MouseButton.MiddleButton and self._panning is not None:
            self._panning = None
            self._update_drag_mode()
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton and self._drawing:
            self._drawing = False
            self.editor.release()
            event.accept()
            return
        start, self._click_start = self._click_start, None
        if event.button() == Qt.MouseButton.LeftButton and start is not None and self.frame is not None \
                and (event.position() - start).manhattanLength() < 4:
            self._emit_click(event.position())
        super().mouseReleaseEvent(event)

    def _emit_click(self, position: QPointF) -> None:
        p = self.mapToScene(position.toPoint())
        h, w = self.frame.shape[:2] if self.frame is not None else (0, 0)
        if 0 <= p.x() < w and 0 <= p.y() < h:
            self.pointClicked.emit(p.x(), p.y())

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if self.editor.tool == POLYGON and event.button() == Qt.MouseButton.LeftButton:
            self.editor.close_polygon()
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self._mouse_scene = None
        self._update_cursor()
        super().leaveEvent(event)

    # ------------------------------------------------------------------ tests / screenshots
    def render_scene(self) -> QImage:
        """The scene at 1:1 (image size), as the layers compose it, independent of zoom."""
        rect = self.scene().sceneRect()
        image = QImage(max(1, int(rect.width())), max(1, int(rect.height())), QImage.Format.Format_RGB32)
        image.fill(BACKGROUND)
        painter = QPainter(image)
        self.scene().render(painter, QRectF(image.rect()), rect)
        painter.end()
        return image


class ReviewViewer(QWidget):
    """One composite canvas; or image | heat map | mask side by side; or, for reconstruction
    methods, input | reconstruction | residual. Side-by-side views share zoom and pan."""

    pointClicked = Signal(float, float)  # a click on any canvas, in image pixels (evidence)

    def __init__(self, editor: MaskEditor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        self.main = ReviewCanvas(editor, COMPOSITE)
        self.recon = ReviewCanvas(editor, RECON)
        self.heat = ReviewCanvas(editor, HEAT)
        self.mask = ReviewCanvas(editor, MASK)
        self.canvases = (self.main, self.recon, self.heat, self.mask)
        self.side_by_side = False
        self.mode = OVERLAY_MODE
        self.frame: ReviewFrame | None = None
        self.reconstruction: QImage | None = None
        self.residual: QImage | None = None
        self._syncing = False
        self._stale: set[ReviewCanvas] = set()  # hidden canvases that miss the current frame
        self._pending_outline: QPainterPath | None = None
        self.message = QLabel("")
        self.message.setObjectName("hint")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.titles = [QLabel(t) for t in ("Image", "Reconstruction", "Anomaly map", "Mask")]
        self.columns: list[QWidget] = []
        row = QHBoxLayout()
        row.setSpacing(4)
        for title, canvas in zip(self.titles, self.canvases):
            title.setObjectName("hint")
            title.setAlignment(Qt.AlignmentFlag.AlignCenter)
            column = QWidget()
            col = QVBoxLayout(column)
            col.setContentsMargins(0, 0, 0, 0)
            col.setSpacing(2)
            col.addWidget(title)
            col.addWidget(canvas, 1)
            row.addWidget(column, 1)
            self.columns.append(column)
            canvas.viewChanged.connect(lambda c=canvas: self._sync_from(c))
            canvas.pointClicked.connect(self.pointClicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row, 1)
        layout.addWidget(self.message)
        editor.maskChanged.connect(self._on_mask_changed)
        editor.editFinished.connect(lambda *_: self.refresh_mask())
        self._apply_layout()

    def set_frame(self, frame: ReviewFrame | None, message: str = "") -> None:
        """Show ``frame``; its mask is shown when the editor gets it (``MaskEditor.set_image``),
        using the outline prepared with the frame. The reconstruction of the previous image is
        dropped: :meth:`set_reconstruction` gives the new one."""
        new_size = frame is None or self.frame is None or frame.shape != self.frame.shape
        self.frame = frame
        self.reconstruction, self.residual = None, None
        self._pending_outline = frame.mask_path if frame is not None else None
        live = self._live_canvases()
        for canvas in live:
            canvas.set_frame(frame)
        self._stale = set(self.canvases) - set(live)
        self.message.setText(message)
        self.message.setVisible(bool(message))
        if frame is None:
            self.refresh_mask()
        elif new_size:
            self.fit()  # same-sized images keep the zoom and position: compare a spot across images

    def set_reconstruction(self, image: QImage | None, residual: QImage | None = None) -> None:
        """The current image's reconstruction (image size; None: not there yet) and, for
        images without a predicted map, the residual map to show."""
        self.reconstruction, self.residual = image, residual
        for canvas in (self.recon, self.heat):
            if canvas not in self._stale:
                canvas.set_reconstruction(image, residual)

    @property
    def multi(self) -> bool:
        """Several synchronised panes are shown."""
        return self.side_by_side or self.mode == RECONSTRUCTION_MODE

    def _live_canvases(self) -> tuple[ReviewCanvas, ...]:
        """Hidden views are brought up to date only when shown."""
        if self.mode == RECONSTRUCTION_MODE:
            return self.main, self.recon, self.heat
        return (self.main, self.heat, self.mask) if self.side_by_side else (self.main,)

    def set_side_by_side(self, on: bool) -> None:
        self.side_by_side = on
        self._apply_layout()

    def set_mode(self, mode: str) -> None:
        """``"overlay"`` (composite or image | map | mask) or ``"reconstruction"``."""
        if mode not in (OVERLAY_MODE, RECONSTRUCTION_MODE):
            raise ValueError(f"unknown view mode {mode!r}")
        self.mode = mode
        self._apply_layout()

    def _apply_layout(self) -> None:
        recon = self.mode == RECONSTRUCTION_MODE
        self.main.set_role(IMAGE if self.multi else COMPOSITE)
        self.heat.set_role(RESIDUAL if recon else HEAT)
        live = self._live_canvases()
        for canvas, column in zip(self.canvases, self.columns):
            column.setVisible(canvas in live)
        self.titles[0].setText("Input" if recon else "Image")
        self.titles[0].setVisible(self.multi)
        self.titles[2].setText(ROLE_TITLES[RESIDUAL] if recon else ROLE_TITLES[HEAT])
        for canvas in live:
            if canvas in self._stale:
                canvas.set_frame(self.frame)
                canvas.refresh_mask()
                self._stale.discard(canvas)
        for canvas in (self.recon, self.heat):
            if canvas in live:
                canvas.set_reconstruction(self.reconstruction, self.residual)
        # the views changed size: fit once the layout has settled (same zoom in all of them)
        QTimer.singleShot(0, self.fit)

    def set_overlay(self, visible: bool | None = None, opacity: float | None = None) -> None:
        for canvas in self.canvases:
            canvas.set_overlay(visible, opacity)

    def set_outlines(self, region: bool | None = None, truth: bool | None = None) -> None:
        for canvas in self.canvases:
            canvas.set_outlines(region, truth)

    def refresh_mask(self, outline: bool | QPainterPath = True) -> None:
        for canvas in self._live_canvases():
            canvas.refresh_mask(outline)

    def _on_mask_changed(self) -> None:
        if self._pending_outline is not None:  # the first mask of a new frame: outline is ready
            path, self._pending_outline = self._pending_outline, None
            self.refresh_mask(path)
            return
        # during a stroke only the fill follows the mouse; the outline is redone at the end
        self.refresh_mask(outline=not any(c._drawing for c in self.canvases))

    # ------------------------------------------------------------------ zoom
    def fit(self) -> None:
        self.main.fit()
        self._sync_from(self.main)

    def actual_size(self) -> None:
        self.main.actual_size()

    def _sync_from(self, source: ReviewCanvas) -> None:
        if self._syncing or not self.multi:
            return
        self._syncing = True
        try:
            center = source.center()
            for canvas in self._live_canvases():
                if canvas is not source:
                    canvas.setTransform(source.transform())
                    canvas._update_smoothing()
                    canvas.centerOn(center)
        finally:
            self._syncing = False
