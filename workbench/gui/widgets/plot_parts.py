"""Pieces shared by the pyqtgraph plots: a legend beside the curves and an empty-plot note.

A legend parented to the view box (pyqtgraph's ``addLegend``) floats over the data and hides
curves in small plots; :func:`legend_below` puts it in the plot's own layout, under the x axis.
"""

from __future__ import annotations

import pyqtgraph as pg

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
    """While a plot has no data: its axes and grid hidden and a short grey text instead."""

    def __init__(self, plot: pg.PlotWidget, text: str) -> None:
        self.plot = plot
        self.item = pg.TextItem(text, color="#6b7280", anchor=(0.5, 0.5))
        self.text = text
        self.shown = False

    def show(self) -> None:
        item = self.plot.getPlotItem()
        for axis in ("left", "bottom"):
            item.hideAxis(axis)
        item.showGrid(x=False, y=False)
        item.getViewBox().setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.item.setPos(0.5, 0.5)
        if self.item.scene() is None:
            self.plot.addItem(self.item, ignoreBounds=True)
        self.item.setVisible(True)
        self.shown = True

    def hide(self, grid_alpha: float = 0.25) -> None:
        item = self.plot.getPlotItem()
        for axis in ("left", "bottom"):
            item.showAxis(axis)
        item.showGrid(x=True, y=True, alpha=grid_alpha)
        self.item.setVisible(False)
        self.shown = False
