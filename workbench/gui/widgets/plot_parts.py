"""Pieces shared by the pyqtgraph plots: a legend beside the curves and an empty-plot note.

A legend parented to the view box (pyqtgraph's ``addLegend``) floats over the data and hides
curves in small plots; :func:`legend_below` puts it in the plot's own layout, under the x axis.
"""

from __future__ import annotations

import pyqtgraph as pg

NO_DATA = "No data yet"
LEGEND_ROW = 5  # below pyqtgraph's PlotItem rows: title 0, top axis 1, view 2, bottom axis 3, label 4


def legend_below(plot: pg.PlotWidget | pg.PlotItem, columns: int = 3, **options) -> pg.LegendItem:
    """A legend laid out below the x axis, in up to ``columns`` columns; curves added with a
    ``name`` go into it (it becomes the plot item's legend)."""
    item = plot.getPlotItem() if isinstance(plot, pg.PlotWidget) else plot
    options.setdefault("labelTextSize", "9pt")
    legend = pg.LegendItem(colCount=columns, frame=False, **options)
    item.layout.addItem(legend, LEGEND_ROW, 1)
    item.legend = legend
    return legend


class EmptyNote:
    """While a plot has no data: a short grey text instead of axes, grid, legend and data items.

    Empty axes (0..1 ticks, a chance diagonal, an FPR band) look like a result and mean nothing.
    The note is a child of the view box itself, not of its data group, so hiding the data group
    hides every curve, line and marker at once without touching their own visibility (an OK line
    switched on while the plot is empty is there when data arrives) and ``plot.clear()`` keeps it.
    """

    def __init__(self, plot: pg.PlotWidget, text: str = NO_DATA) -> None:
        self.plot = plot
        self.text = text
        self.item = pg.TextItem(text, color="#6b7280", anchor=(0.5, 0.5))
        view = plot.getViewBox()
        self.item.setParentItem(view)
        self.item.setVisible(False)
        view.sigResized.connect(self._centre)
        self.shown = False

    def _centre(self, *_args) -> None:
        self.item.setPos(self.plot.getViewBox().rect().center())

    def show(self, text: str | None = None) -> None:
        """Hide the plot's contents and show ``text`` (default: the text given at creation)."""
        item = self.plot.getPlotItem()
        for axis in ("left", "bottom"):
            item.hideAxis(axis)  # an axis draws its grid lines too
        item.getViewBox().childGroup.setVisible(False)
        if item.legend is not None:
            item.legend.setVisible(False)
        self.item.setText(text or self.text)
        self._centre()
        self.item.setVisible(True)
        self.shown = True

    def set_empty(self, empty: bool, text: str | None = None) -> None:
        if empty:
            self.show(text)
        else:
            self.hide()

    def hide(self) -> None:
        item = self.plot.getPlotItem()
        for axis in ("left", "bottom"):
            item.showAxis(axis)
        item.getViewBox().childGroup.setVisible(True)
        if item.legend is not None:
            item.legend.setVisible(True)
        self.item.setVisible(False)
        self.shown = False
