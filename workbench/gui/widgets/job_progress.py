"""Progress of one background job: stage, bar, time left, a live plot, a log and Cancel.

The plot shows the training loss when a method reports one (``metrics['loss']`` in its
progress events). Methods without a loss (PatchCore memorises features, PaDiM fits
Gaussians) get a per-stage progress plot instead, which shows where the time goes.
"""

from __future__ import annotations

import time

import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QStyle, QVBoxLayout, QWidget,
)

from workbench.core.jobs import ProgressEvent
from workbench.gui.workers import Worker
from workbench.gui.widgets.plot_parts import EmptyNote, legend_below

PLOT_COLORS = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2")


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class JobProgress(QWidget):
    """Follows one :class:`Worker` at a time (call :meth:`attach` for each new job)."""

    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.worker: Worker | None = None
        self.events: list[ProgressEvent] = []
        self._started = 0.0
        self._stage = ""
        self._stage_started = 0.0
        self._loss: list[float] = []
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._points: dict[str, tuple[list[float], list[float]]] = {}

        self.title = QLabel("No job running")
        self.title.setObjectName("jobTitle")
        self.stage = QLabel("")
        self.stage.setObjectName("jobStage")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.bar.setTextVisible(False)
        self.time = QLabel("")
        self.time.setObjectName("jobTime")
        self.cancel_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_BrowserStop), "Cancel")
        self.cancel_button.setToolTip("Stop the job at its next step (Esc). Nothing is saved.")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)

        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(150)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setTitle("Progress", color="#374151", size="10pt")
        self._legend = legend_below(self.plot, labelTextColor="#374151")
        self.empty_note = EmptyNote(
            self.plot, "No data yet: a training's loss or a job's\nprogress per stage is plotted here")
        self.empty_note.show()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setPlaceholderText("The job log appears here.")
        self.log.setObjectName("jobLog")

        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(head)
        layout.addWidget(self.stage)
        layout.addWidget(self.bar)
        layout.addWidget(self.time)
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.log, 2)

        self._clock = QTimer(self)
        self._clock.setInterval(500)
        self._clock.timeout.connect(self._update_time)

    # ------------------------------------------------------------------ following a job
    def attach(self, worker: Worker, title: str) -> None:
        self.worker = worker
        self.events.clear()
        self._loss.clear()
        self._clear_plot()
        self.empty_note.hide()
        self.plot.setTitle("Progress per stage (%)", color="#374151", size="10pt")
        self.plot.setLabel("bottom", "seconds")
        self.plot.setLabel("left", "done (%)")
        self.plot.enableAutoRange(axis="y", enable=False)
        self.plot.setYRange(0, 100, padding=0.04)
        self.title.setText(title)
        self.stage.setText("Starting…")
        self.bar.setRange(0, 0)  # busy until the first event says how much work there is
        self._started = self._stage_started = time.monotonic()
        self._stage = ""
        self.cancel_button.setEnabled(True)
        self.append_log(f"{title} started")
        # Guards: a previous job's late signal must not overwrite the one now shown.
        worker.progress.connect(lambda e, w=worker: w is self.worker and self._on_progress(e))
        worker.finished.connect(lambda _r, w=worker: w is self.worker and self._end("finished", "Done"))
        worker.failed.connect(lambda msg, _d, w=worker: w is self.worker and self._end("failed", f"Failed: {msg}"))
        worker.cancelled.connect(lambda w=worker: w is self.worker and self._end("cancelled", "Cancelled: nothing was saved"))
        self._clock.start()
        self._update_time()

    def cancel(self) -> None:
        if self.worker is not None and self.worker.running:
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.stage.setText("Cancelling at the next step…")
            self.append_log("Cancel requested")
            self.cancelRequested.emit()

    def append_log(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.log.appendPlainText(f"{stamp}  {text}")

    # ------------------------------------------------------------------ events
    def _on_progress(self, event: ProgressEvent) -> None:
        self.events.append(event)
        now = time.monotonic()
        if event.stage != self._stage:
            self._stage, self._stage_started = event.stage, now
            self.append_log(event.stage + (f" ({event.total} steps)" if event.total else ""))
        elif event.message and len(self.events) % 20 == 0:
            self.append_log(f"{event.stage}: {event.message}")
        if event.total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * event.fraction))
            self.stage.setText(f"{event.stage}: {event.current} / {event.total}"
                               + (f" – {event.message}" if event.message else ""))
        else:
            self.bar.setRange(0, 0)
            self.stage.setText(event.stage + (f" – {event.message}" if event.message else ""))
        if "loss" in event.metrics:
            self._plot_loss(event.metrics["loss"])
        elif not self._loss and event.total > 1:
            self._plot_stage(event.stage, now - self._started, 100.0 * event.fraction)
        self._update_time()

    def _plot_loss(self, loss: float) -> None:
        if not self._loss:
            self._clear_plot()
            self.plot.setTitle("Training loss", color="#374151", size="10pt")
            self.plot.enableAutoRange(axis="y", enable=True)
            self.plot.setLabel("bottom", "step")
            self.plot.setLabel("left", "loss")
            self._curves["loss"] = self.plot.plot(pen=pg.mkPen(PLOT_COLORS[0], width=2), name="loss")
        self._loss.append(loss)
        self._curves["loss"].setData(self._loss)

    def _plot_stage(self, stage: str, t: float, percent: float) -> None:
        if stage not in self._curves:
            color = PLOT_COLORS[len(self._curves) % len(PLOT_COLORS)]
            self._curves[stage] = self.plot.plot(pen=pg.mkPen(color, width=2), name=stage)
            self._points[stage] = ([], [])
        xs, ys = self._points[stage]
        xs.append(t)
        ys.append(percent)
        self._curves[stage].setData(xs, ys)

    def _clear_plot(self) -> None:
        self.plot.clear()
        if self._legend is not None:
            self._legend.clear()
        self._curves.clear()
        self._points.clear()

    def _end(self, state: str, text: str) -> None:
        self._clock.stop()
        self.cancel_button.setEnabled(False)
        if state == "finished":
            self.bar.setRange(0, 1000)
            self.bar.setValue(1000)
        elif self.bar.maximum() == 0:
            self.bar.setRange(0, 1000)
        self.stage.setText(text)
        self.append_log(f"{self.title.text()}: {text} after {format_duration(time.monotonic() - self._started)}")
        self._update_time(final=True)

    def _update_time(self, final: bool = False) -> None:
        if self.worker is None:
            return
        now = time.monotonic()
        text = f"Elapsed {format_duration(now - self._started)}"
        last = self.events[-1] if self.events else None
        if not final and last is not None and last.total > 0 and 0.02 < last.fraction < 1.0:
            spent = now - self._stage_started
            left = spent * (1.0 - last.fraction) / last.fraction
            text += f"  ·  about {format_duration(left)} left in this stage"
        self.time.setText(text)
