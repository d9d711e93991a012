"""Python's cyclic garbage collector, run only in the GUI thread.

Why: the collector runs in whichever thread happens to allocate when a generation fills up.
When that is a worker thread (a model being built for a background job) and the garbage holds
Qt widgets (a closed dialog or menu kept alive by a reference cycle), the widgets are destroyed
outside the GUI thread: Qt then takes its object mutex while PySide waits for the GIL that the
GUI thread needs to finish painting, and both threads wait for ever (seen as a hung test run:
a worker in ``QMenu::~QMenu`` from ``gc_collect_main``, the GUI thread in ``QObject::~QObject``).
Collecting from a timer in the GUI thread, with automatic collection off, removes that race.
pyqtgraph has the same idea (``pyqtgraph.util.garbage_collector``), but the torch-free Inspector
bundle ships without pyqtgraph, so this small copy of the idea is ours.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 1000


class GuiThreadCollector(QObject):
    """While alive (and started), automatic collection is off and a GUI-thread timer collects
    each generation whose count is past Python's own threshold."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_due)

    def start(self) -> None:
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        """Collect everything now (in this, the GUI thread) and give collection back to Python."""
        self._timer.stop()
        gc.collect()
        gc.enable()

    def collect_due(self) -> None:
        counts = gc.get_count()
        for generation in (2, 1, 0):  # the oldest generation that is due also collects the younger ones
            if counts[generation] > self._thresholds[generation]:
                gc.collect(generation)
                return


def collect_garbage_in_gui_thread(app: QObject) -> GuiThreadCollector:
    """Install the collector for ``app``'s lifetime (it is the collector's parent)."""
    collector = GuiThreadCollector(app)
    collector.start()
    return collector
