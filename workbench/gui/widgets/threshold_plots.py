"""The Threshold step's plots: score histogram with a draggable threshold, ROC, PR and PRO.

Curves are set once per evaluation; moving the threshold only moves a marker, an error bar
or a line (``setData`` on one or two points), so dragging stays smooth however long the
curves are. The widgets compute nothing: values come from the panel (from the core).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsItem

from workbench.core.metrics import Curve, ProCurve
from workbench.gui.widgets.plot_parts import EmptyNote, legend_below

GOOD_COLOR = "#2563eb"
DEFECT_COLOR = "#dc2626"
CURVE_COLOR = "#1f2937"
POINT_COLOR = "#d97706"
LINE_COLOR = "#111827"
REVIEW_LINE_COLOR = "#b26a00"  # the OK threshold of a REVIEW band
LOG_FLOOR = 0.5  # empty bins in log scale sit on this floor (log of 0 does not exist)
PICK_RADIUS_PX = 40.0  # a click on a curve plot picks the nearest point within this distance


def _brush(color: str, alpha: int) -> QColor:
    c = QColor(color)
    c.setAlpha(alpha)
    return c


def _cached(item: QGraphicsItem) -> QGraphicsItem:
    """Paint a curve that does not change while the threshold moves from a pixmap cache:
    moving a line or a marker over it then costs a blit, not a new antialiased path."""
    item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    return item


def _style(plot: pg.PlotWidget, title: str, x_label: str, y_label: str) -> None:
    item = plot.getPlotItem()
    item.setTitle(f"<span style='font-size:10pt; font-weight:600'>{title}</span>")
    item.setLabel("bottom", x_label)
    item.setLabel("left", y_label)
    item.showGrid(x=True, y=True, alpha=0.15)
    item.setMenuEnabled(False)
    plot.setMinimumSize(190, 150)


class _Marker(QGraphicsEllipseItem):
    """The operating point: a fixed-size dot moved with ``setPos`` (much cheaper per move
    than ``ScatterPlotItem.setData``, which rebuilds its point table)."""

    def __init__(self, size: float = 12.0, color: str = POINT_COLOR) -> None:
        super().__init__(-size / 2, -size / 2, size, size)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setBrush(pg.mkBrush(color))
        self.setPen(pg.mkPen("#ffffff", width=1.5))
        self.setZValue(10)
        self.setVisible(False)

    def move_to(self, x: float | None, y: float | None = None) -> None:
        if x is None or y is None:
            self.setVisible(False)
            return
        self.setPos(x, y)
        self.setVisible(True)

    def position(self) -> tuple[float, float] | None:
        return (float(self.pos().x()), float(self.pos().y())) if self.isVisible() else None

    @staticmethod
    def legend_sample(size: float = 10.0, color: str = POINT_COLOR) -> pg.ScatterPlotItem:
        """A stand-in the legend can draw (it reads symbol, size, pen and brush from it)."""
        return pg.ScatterPlotItem(size=size, pen=pg.mkPen("#ffffff", width=1.5), brush=pg.mkBrush(color))


class ScoreHistogram(pg.PlotWidget):
    """Good and defective image scores overlaid, with a movable vertical threshold line.

    Values are in *display* units (the panel converts to and from raw scores).
    ``thresholdDragged(display_value)`` is emitted only for the user's drags, never for
    :meth:`set_threshold`.
    """

    thresholdDragged = Signal(float)
    okThresholdDragged = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        _style(self, "Image scores", "score", "images")
        self.log_scale = False
        self._edges = np.array([0.0, 1.0])
        self._counts: dict[str, np.ndarray] = {}
        self._setting = False
        self.legend = legend_below(self)
        self.good_curve = self.plot([0, 1], [0], stepMode="center", fillLevel=0, name="good",
                                    pen=pg.mkPen(GOOD_COLOR, width=1.5), brush=_brush(GOOD_COLOR, 70))
        self.defect_curve = self.plot([0, 1], [0], stepMode="center", fillLevel=0, name="defective",
                                      pen=pg.mkPen(DEFECT_COLOR, width=1.5), brush=_brush(DEFECT_COLOR, 70))
        for curve in (self.good_curve, self.defect_curve):
            _cached(curve.curve)
        self.line = pg.InfiniteLine(pos=0.0, angle=90, movable=True,
                                    pen=pg.mkPen(LINE_COLOR, width=2),
                                    hoverPen=pg.mkPen(POINT_COLOR, width=3),
                                    label="{value:.4g}",
                                    labelOpts={"position": 0.93, "color": LINE_COLOR, "fill": (255, 255, 255, 220),
                                               "movable": True})
        self.line.setToolTip("Drag to move the image threshold: images at or above it are NG")
        self.line.setZValue(10)
        self.addItem(self.line)
        self.line.sigPositionChanged.connect(self._on_line_moved)
        # second line: the OK threshold of a REVIEW band (hidden without a band)
        self.ok_line = pg.InfiniteLine(pos=0.0, angle=90, movable=True,
                                       pen=pg.mkPen(REVIEW_LINE_COLOR, width=2, style=Qt.PenStyle.DashLine),
                                       hoverPen=pg.mkPen(POINT_COLOR, width=3),
                                       label="OK < {value:.4g}",
                                       labelOpts={"position": 0.80, "color": REVIEW_LINE_COLOR,
                                                  "fill": (255, 255, 255, 220), "movable": True})
        self.ok_line.setToolTip("Drag to move the OK threshold: images between the two lines go to REVIEW")
        self.ok_line.setZValue(9)
        self.ok_line.setVisible(False)
        self.addItem(self.ok_line)
        self.ok_line.sigPositionChanged.connect(self._on_ok_line_moved)
        # Axes only with data: an empty histogram's axes (-400..400 'images') mean nothing.
        self.empty = EmptyNote(self, "No scores yet")
        self.note = self.empty.item
        self.set_scores(np.empty(0), np.empty(0))

    # ------------------------------------------------------------------ data
    def set_scores(self, good: np.ndarray, defect: np.ndarray, threshold: float | None = None) -> None:
        """Histogram ``good`` and ``defect`` (display units) on shared bins."""
        both = np.concatenate([good, defect]).astype(np.float64)
        if both.size == 0:
            self._counts = {}
            self.good_curve.setData([0, 1], [0])
            self.defect_curve.setData([0, 1], [0])
            self.empty.show()
            return
        self.empty.hide()
        bins = int(np.clip(round(2.0 * math.sqrt(both.size)), 20, 80))
        lo, hi = float(both.min()), float(both.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        self._edges = np.linspace(lo, hi, bins + 1)
        self._counts = {"good": np.histogram(good, self._edges)[0], "defect": np.histogram(defect, self._edges)[0]}
        self.good_curve.setVisible(good.size > 0)
        self.defect_curve.setVisible(defect.size > 0)
        self._redraw()
        span = hi - lo
        x_lo, x_hi = lo, hi
        if threshold is not None and np.isfinite(threshold):
            x_lo, x_hi = min(lo, threshold), max(hi, threshold)
        self.setXRange(x_lo - 0.03 * span, x_hi + 0.03 * span, padding=0)

    def set_log_scale(self, on: bool) -> None:
        self.log_scale = bool(on)
        self.getPlotItem().setLogMode(False, self.log_scale)
        self._redraw()

    def _redraw(self) -> None:
        if not self._counts:
            return
        top = 1.0
        for key, curve in (("good", self.good_curve), ("defect", self.defect_curve)):
            counts = self._counts[key].astype(np.float64)
            top = max(top, float(counts.max(initial=0)))
            if self.log_scale:
                curve.setFillLevel(math.log10(LOG_FLOOR))
                curve.setData(self._edges, np.maximum(counts, LOG_FLOOR))
            else:
                curve.setFillLevel(0)
                curve.setData(self._edges, counts)
        if self.log_scale:
            self.setYRange(math.log10(LOG_FLOOR), math.log10(top) + 0.15, padding=0)
        else:
            self.setYRange(0, top * 1.08, padding=0)

    def counts(self) -> dict[str, np.ndarray]:
        return dict(self._counts)

    # ------------------------------------------------------------------ threshold
    def set_threshold(self, value: float) -> None:
        """Move the line without emitting :attr:`thresholdDragged`."""
        self._setting = True
        try:
            self.line.setValue(float(value))
        finally:
            self._setting = False

    def threshold(self) -> float:
        return float(self.line.value())

    def set_ok_threshold(self, value: float | None) -> None:
        """Show the band's OK line at ``value`` (display units), or hide it (None)."""
        self._setting = True
        try:
            self.ok_line.setVisible(value is not None)
            if value is not None:
                self.ok_line.setValue(float(value))
        finally:
            self._setting = False

    def ok_threshold(self) -> float | None:
        return float(self.ok_line.value()) if self.ok_line.isVisible() else None

    def _on_line_moved(self, _line=None) -> None:
        if not self._setting:
            self.thresholdDragged.emit(float(self.line.value()))

    def _on_ok_line_moved(self, _line=None) -> None:
        if not self._setting:
            self.okThresholdDragged.emit(float(self.ok_line.value()))


class CurvePlot(pg.PlotWidget):
    """A threshold curve (ROC or PR) with the operating point and its 95% error bars.

    A left click picks the nearest curve point and emits ``pointPicked(raw_threshold)``
    (``+inf`` for the "nothing flagged" end, as the core's curves say).
    """

    pointPicked = Signal(float)

    def __init__(self, title: str, x_label: str, y_label: str, diagonal: bool = False, legend: bool = False,
                 parent=None) -> None:
        super().__init__(parent)
        _style(self, title, x_label, y_label)
        self.curve_data: Curve | None = None
        # Only the curve's name (e.g. its AUROC) goes into a legend: the plots are small.
        self.legend = legend_below(self, columns=1) if legend else None
        if diagonal:
            chance = self.plot([0, 1], [0, 1], pen=pg.mkPen("#9ca3af", width=1, style=Qt.PenStyle.DashLine))
            _cached(chance.curve)
        self.curve = self.plot([], [], pen=pg.mkPen(CURVE_COLOR, width=2), name=title)
        _cached(self.curve.curve)
        self.errors = pg.ErrorBarItem(x=np.zeros(1), y=np.zeros(1), pen=pg.mkPen(POINT_COLOR, width=2), beam=0.03)
        self.errors.setZValue(9)
        self.addItem(self.errors, ignoreBounds=True)
        self.point = _Marker(12)
        self.addItem(self.point, ignoreBounds=True)
        self.empty = EmptyNote(self)
        self.note = self.empty.item
        self.setXRange(-0.02, 1.04, padding=0)  # room for the "1.0" tick label and the end point
        self.setYRange(-0.02, 1.04, padding=0)
        self.getPlotItem().vb.setLimits(xMin=-0.05, xMax=1.05, yMin=-0.05, yMax=1.05)
        self.scene().sigMouseClicked.connect(self._on_click)
        self.setToolTip("Orange: the current threshold, with its exact 95% interval as error bars.\n"
                        "Click a point of the curve to move the threshold there.")
        self.empty.show()  # until a curve is set

    def set_curve(self, curve: Curve | None, name: str = "", note: str = "") -> None:
        self.curve_data = curve
        if curve is None:
            self.curve.setData([], [])
            self.point.move_to(None)
            self.errors.setVisible(False)
        else:
            self.curve.setData(curve.x, curve.y)
            if name:
                self._rename(name)
        self.empty.set_empty(curve is None, note)  # e.g. "Needs defective test images"

    def _rename(self, name: str) -> None:
        if self.legend is None:
            return
        for sample, label in self.legend.items:
            if sample.item is self.curve:
                label.setText(name)

    def set_point(self, x: float, y: float, x_interval: tuple[float, float] | None = None,
                  y_interval: tuple[float, float] | None = None) -> None:
        if self.curve_data is None:
            return
        self.point.move_to(x, y)
        if x_interval is None and y_interval is None:
            self.errors.setVisible(False)
            return
        left, right = (x - x_interval[0], x_interval[1] - x) if x_interval else (0.0, 0.0)
        bottom, top = (y - y_interval[0], y_interval[1] - y) if y_interval else (0.0, 0.0)
        self.errors.setData(x=np.array([x]), y=np.array([y]), left=np.array([max(left, 0.0)]),
                            right=np.array([max(right, 0.0)]), bottom=np.array([max(bottom, 0.0)]),
                            top=np.array([max(top, 0.0)]))
        self.errors.setVisible(True)

    def point_position(self) -> tuple[float, float] | None:
        return self.point.position()

    # ------------------------------------------------------------------ picking
    def nearest_index(self, x: float, y: float, max_px: float | None = PICK_RADIUS_PX) -> int | None:
        """Index of the curve point nearest (in screen pixels) to view position (x, y)."""
        if self.curve_data is None or self.curve_data.x.size == 0:
            return None
        vb = self.getViewBox()
        rect = vb.viewRect()
        sx = vb.width() / rect.width() if rect.width() else 1.0
        sy = vb.height() / rect.height() if rect.height() else 1.0
        dist = np.hypot((self.curve_data.x - x) * sx, (self.curve_data.y - y) * sy)
        i = int(np.argmin(dist))
        if max_px is not None and dist[i] > max_px:
            return None
        return i

    def pick(self, index: int) -> float:
        """Emit the threshold of curve point ``index`` as if it were clicked."""
        assert self.curve_data is not None
        value = float(self.curve_data.thresholds[index])
        self.pointPicked.emit(value)
        return value

    def view_to_widget(self, x: float, y: float):
        """Widget pixel position of view coordinates (for tests that click a point)."""
        scene = self.getViewBox().mapViewToScene(QPointF(x, y))
        return self.mapFromScene(scene)

    def _on_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self.curve_data is None:
            return
        vb = self.getViewBox()
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        pos = vb.mapSceneToView(event.scenePos())
        i = self.nearest_index(pos.x(), pos.y())
        if i is not None:
            event.accept()
            self.pick(i)


class ProPlot(pg.PlotWidget):
    """Pixel-level PRO curve, the FPR integration limit and the pixel operating point."""

    def __init__(self, fpr_limit: float = 0.3, parent=None) -> None:
        super().__init__(parent)
        _style(self, "PRO (pixel level)", "false-positive rate (pixels)", "per-region overlap")
        self.fpr_limit = fpr_limit
        self.curve_data: ProCurve | None = None
        self.legend = legend_below(self, columns=1)
        self.region = pg.LinearRegionItem((0.0, fpr_limit), movable=False, brush=_brush("#10b981", 28),
                                          pen=pg.mkPen(None))
        self.region.setZValue(-10)
        self.addItem(self.region)
        self.limit = pg.InfiniteLine(pos=fpr_limit, angle=90, movable=False,
                                     pen=pg.mkPen("#059669", width=1.5, style=Qt.PenStyle.DashLine),
                                     label=f"FPR limit {fpr_limit:g}",
                                     labelOpts={"position": 0.97, "color": "#047857",
                                                "anchors": [(-0.05, 0), (-0.05, 0)]})
        self.addItem(self.limit)
        self.curve = self.plot([], [], pen=pg.mkPen(CURVE_COLOR, width=2), name="PRO")
        _cached(self.curve.curve)
        self.point = _Marker(11)
        self.addItem(self.point, ignoreBounds=True)
        self.legend.addItem(_Marker.legend_sample(), "pixel threshold")
        self.empty = EmptyNote(self)
        self.note = self.empty.item
        self.setXRange(-0.02, 1.04, padding=0)  # room for the "1.0" tick label and the end point
        self.setYRange(-0.02, 1.04, padding=0)
        self.getPlotItem().vb.setLimits(xMin=-0.05, xMax=1.05, yMin=-0.05, yMax=1.05)
        self.empty.show()  # until a curve is set

    def set_curve(self, curve: ProCurve | None, aupro: float | None, note: str = "") -> None:
        self.curve_data = curve
        label = "PRO" if aupro is None else f"PRO (AUPRO@{self.fpr_limit:g} = {aupro:.3f})"
        for sample, text in self.legend.items:
            if sample.item is self.curve:
                text.setText(label)
        self.legend_text = label
        if curve is None:
            self.curve.setData([], [])
            self.point.move_to(None)
        else:
            self.curve.setData(curve.fpr, curve.pro)
        self.empty.set_empty(curve is None, note)  # e.g. "Needs defective test images"

    def set_pixel_threshold(self, threshold: float | None) -> None:
        """Mark the curve point reached by flagging pixels ``>= threshold`` (nearest kept point)."""
        if self.curve_data is None or threshold is None:
            self.point.move_to(None)
            return
        thr = self.curve_data.thresholds  # descending
        i = int(np.searchsorted(-thr, -threshold, side="right")) - 1  # last point with thresholds >= threshold
        i = min(max(i, 0), thr.size - 1)
        self.point.move_to(float(self.curve_data.fpr[i]), float(self.curve_data.pro[i]))

    def point_position(self) -> tuple[float, float] | None:
        return self.point.position()
