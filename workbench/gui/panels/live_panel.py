"""Step 6 - Live: the station view. Score parts as they arrive and show each verdict large.

The current image with its heat map and defect outline, a large OK / REVIEW / NG verdict,
the score against the thresholds, running counts and yield, latency and frames per second
(and frames dropped when scoring is slower than the source), a strip of the last NG and
REVIEW parts (click one for a closer look) and a full-screen toggle (F11).

Sources: replay a folder at a rate, watch a folder for new files, or a camera (index or URL).
The loop is the core's (:mod:`workbench.core.live`), run by :class:`LiveRunner` off the GUI
thread; every session writes its CSV log, summary and NG/REVIEW copies into a folder of its
own under ``log_root`` (the workspace's ``live/`` folder in the main window).
"""

from __future__ import annotations

import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFileDialog, QFrame, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton,
    QSizePolicy, QVBoxLayout, QWidget,
)

from workbench.core.live import CameraSource, ReplayFolder, WatchedFolder
from workbench.gui.live_runner import LiveRunner
from workbench.gui.widgets.live_image import LiveImage
from workbench.gui.widgets.live_result_dialog import LiveResultDialog
from workbench.gui.widgets.live_strip import LiveStrip
from workbench.gui.widgets.score_gauge import ScoreGauge
from workbench.gui.widgets.verdict_banner import VerdictBanner

REPLAY, WATCH, CAMERA = "replay", "watch", "camera"
SOURCE_TITLES = {REPLAY: "Replay a folder", WATCH: "Watch a folder", CAMERA: "Camera"}
SOURCE_HINTS = {REPLAY: "folder of images", WATCH: "folder new images are written to",
                CAMERA: "device index (0, 1, …) or stream URL"}


def make_source(kind: str, target: str, fps: float | None):
    """The core source for the form's choice (raises SourceError with a message for the user)."""
    if kind == WATCH:
        return WatchedFolder(target)
    if kind == CAMERA:
        return CameraSource(target or "0", fps=fps)
    return ReplayFolder(target, fps=fps, loop=True)


class LivePanel(QWidget):
    """The station view. A click on a strip image calls ``open_handler(result)`` when set (the
    main window opens the image in Review when it belongs to the current dataset), else a
    dialog shows it."""

    fullScreenToggled = Signal(bool)

    def __init__(self, log_root: str | Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.log_root = Path(log_root) if log_root else None
        self.model_dir: Path | None = None
        self.session_dir: Path | None = None
        self.last: Any = None
        self.open_handler: Callable[[Any], None] | None = None
        self.runner = LiveRunner(self)
        self.runner.result.connect(self._on_result)
        self.runner.flagged.connect(self._on_flagged)
        self.runner.stats.connect(self._on_stats)
        self.runner.notice.connect(self._on_notice)
        self.runner.started.connect(lambda text: self.status.setText(f"Running: {text}"))
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self._build_controls())
        middle = QHBoxLayout()
        self.image = LiveImage()
        middle.addWidget(self.image, 3)
        middle.addWidget(self._build_readout(), 2)
        layout.addLayout(middle, 1)
        strip_title = QLabel("Last NG / REVIEW parts (click to look closer)")
        strip_title.setObjectName("sectionTitle")
        layout.addWidget(strip_title)
        self.strip = LiveStrip()
        self.strip.resultClicked.connect(self.open_result)
        layout.addWidget(self.strip)
        self.status = QLabel("Choose a model and a source, then Start.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        full = QShortcut(QKeySequence(Qt.Key.Key_F11), self, self.toggle_full_screen)
        full.setWhatsThis("Full-screen station view on/off")  # listed in Help > Keyboard shortcuts
        self._update_controls()

    # ------------------------------------------------------------------ building
    def _build_controls(self) -> QWidget:
        box = QFrame()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.model_label = QLabel("No model")
        self.model_label.setMinimumWidth(120)
        self.model_button = QPushButton("Model…")
        self.model_button.setToolTip("An exported model folder (fastest, no torch) or a trained model package")
        self.model_button.clicked.connect(self.choose_model)
        self.source_combo = QComboBox()
        for key, title in SOURCE_TITLES.items():
            self.source_combo.addItem(title, key)
        self.source_combo.currentIndexChanged.connect(self._update_controls)
        self.target_edit = QLineEdit()
        self.target_edit.setMinimumWidth(160)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self.choose_target)
        self.fps_spin = QDoubleSpinBox()
        self.fps_spin.setRange(0.0, 240.0)
        self.fps_spin.setDecimals(1)
        self.fps_spin.setValue(2.0)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.setSpecialValueText("max")
        self.fps_spin.setToolTip("Replay: images per second (max: as fast as scored). Camera: frame-rate cap.")
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("primaryButton")
        self.start_button.clicked.connect(self._start_or_stop)
        self.full_button = QPushButton("Full screen")
        self.full_button.setToolTip("Full screen station view (F11)")
        self.full_button.setCheckable(True)
        self.full_button.clicked.connect(lambda _checked: self.toggle_full_screen())
        for widget in (self.model_label, self.model_button, self.source_combo):
            row.addWidget(widget)
        row.addWidget(self.target_edit, 1)
        for widget in (self.browse_button, self.fps_spin, self.start_button, self.full_button):
            row.addWidget(widget)
        self.controls = box
        return box

    def _build_readout(self) -> QWidget:
        box = QWidget()
        col = QVBoxLayout(box)
        col.setContentsMargins(8, 0, 0, 0)
        self.banner = VerdictBanner()
        self.banner.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        col.addWidget(self.banner, 2)
        self.score_label = QLabel("score –")
        self.score_label.setObjectName("liveScore")
        self.score_label.setStyleSheet("font-size: 15pt; font-weight: 600;")
        self.gauge = ScoreGauge()
        self.threshold_label = QLabel("")
        self.threshold_label.setWordWrap(True)
        col.addWidget(self.score_label)
        col.addWidget(self.gauge)
        col.addWidget(self.threshold_label)
        grid = QGridLayout()
        self.count_labels: dict[str, QLabel] = {}
        for i, key in enumerate(("OK", "REVIEW", "NG", "yield")):
            title = QLabel(key.capitalize() if key == "yield" else key)
            value = QLabel("0" if key != "yield" else "–")
            value.setStyleSheet("font-size: 18pt; font-weight: 700;")
            grid.addWidget(title, 0, i, Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(value, 1, i, Qt.AlignmentFlag.AlignCenter)
            self.count_labels[key] = value
        col.addLayout(grid)
        self.perf_label = QLabel("latency – · – frames/s · 0 dropped")
        self.perf_label.setWordWrap(True)
        self.name_label = QLabel("")
        self.name_label.setWordWrap(True)
        self.notice_label = QLabel("")
        self.notice_label.setWordWrap(True)
        self.notice_label.setStyleSheet("color: #f0a500;")
        for widget in (self.perf_label, self.name_label, self.notice_label):
            col.addWidget(widget)
        col.addStretch(1)
        return box

    # ------------------------------------------------------------------ configuration
    def set_log_root(self, folder: str | Path | None) -> None:
        self.log_root = Path(folder) if folder else None

    def set_model(self, model_dir: str | Path | None, name: str = "") -> None:
        self.model_dir = Path(model_dir) if model_dir else None
        text = name or (f"{self.model_dir.parent.name}/{self.model_dir.name}" if self.model_dir else "No model")
        self.model_label.setText(text)
        self.model_label.setToolTip(str(self.model_dir or ""))
        self._update_controls()

    def set_source(self, kind: str, target: str | Path, fps: float | None = None) -> None:
        self.source_combo.setCurrentIndex(self.source_combo.findData(kind))
        self.target_edit.setText(str(target))
        self.fps_spin.setValue(float(fps or 0.0))

    def choose_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder (exported or trained)")
        if folder:
            self.set_model(folder)

    def choose_target(self) -> None:
        if self.source_combo.currentData() == CAMERA:
            return
        folder = QFileDialog.getExistingDirectory(self, SOURCE_HINTS[self.source_combo.currentData()])
        if folder:
            self.target_edit.setText(folder)

    def _update_controls(self) -> None:
        kind = self.source_combo.currentData()
        running = self.runner.running
        self.target_edit.setPlaceholderText(SOURCE_HINTS.get(kind, ""))
        self.browse_button.setEnabled(kind != CAMERA and not running)
        self.fps_spin.setEnabled(kind != WATCH and not running)
        for widget in (self.model_button, self.source_combo, self.target_edit):
            widget.setEnabled(not running)
        self.start_button.setText("Stop" if running else "Start")
        self.start_button.setEnabled(running or self.model_dir is not None)

    # ------------------------------------------------------------------ running
    def _start_or_stop(self) -> None:
        if self.runner.running:
            self.stop()
        else:
            self.start()

    def start(self) -> bool:
        """Start a session with the form's model and source; False (with the reason shown) if not possible."""
        if self.runner.running:
            return False
        if self.model_dir is None:
            self.status.setText("Choose a model first (Model…).")
            return False
        kind, target = self.source_combo.currentData(), self.target_edit.text().strip()
        if kind != CAMERA and not target:
            self.status.setText(f"Give the {SOURCE_HINTS[kind]}.")
            return False
        fps = self.fps_spin.value() or None
        root = self.log_root or Path.home() / "workbench-live"
        self.session_dir = root / time.strftime("%Y%m%d-%H%M%S")
        self._reset_readout()
        self.status.setText("Loading the model…")
        self.runner.start(self.model_dir, lambda: make_source(kind, target, fps), self.session_dir / "live.csv",
                          copy_dir=self.session_dir / "ng-review")
        self._update_controls()
        return True

    def stop(self, wait_s: float = 0.0) -> None:
        self.runner.stop(wait_s)
        self.status.setText("Stopping…")

    def shutdown(self, wait_s: float = 10.0) -> None:
        """Stop any session and wait for it (window closing, workspace switch)."""
        if self.runner.running:
            self.runner.stop(wait_s)

    def _reset_readout(self) -> None:
        self.strip.clear()
        self.banner.set_verdict("")
        self.image.set_image(None)
        self.score_label.setText("score –")
        self.gauge.set_score(None)
        self.notice_label.setText("")
        self.name_label.setText("")
        self.last = None

    # ------------------------------------------------------------------ results (GUI thread)
    def _on_result(self, result) -> None:
        self.last = result
        self.banner.set_verdict(result.verdict)
        if result.view is not None or result.image is not None:
            self.image.set_image(result.view if result.view is not None else result.image)
        score = "–" if result.score is None else f"{result.score:.4g}"
        self.score_label.setText(f"score {score}   ·   {result.latency_ms:.0f} ms")
        self.gauge.set_score(result.score)
        tail = f"\n{result.error}" if result.error else ""
        short = "/".join(Path(result.name).parts[-2:]) if result.path is not None else result.name
        self.name_label.setText(f"#{result.index}  {short}{tail}")
        self.name_label.setToolTip(result.name)

    def _on_flagged(self, result) -> None:
        self.strip.add_result(result)

    def _on_stats(self, summary: dict) -> None:
        counts = summary.get("counts", {})
        for key in ("OK", "REVIEW", "NG"):
            self.count_labels[key].setText(str(counts.get(key, 0)))
        yld = summary.get("yield")
        self.count_labels["yield"].setText("–" if yld is None else f"{yld:.1%}")
        lat = summary.get("latency_ms", {})
        lat_text = "–" if lat.get("median") is None else f"{lat['median']:.0f} ms (p95 {lat['p95']:.0f})"
        self.perf_label.setText(f"latency {lat_text} · {summary.get('recent_fps', 0.0):.1f} frames/s · "
                                f"{summary.get('dropped', 0)} dropped · {summary.get('images', 0)} images")
        ng, ok = summary.get("ng_threshold"), summary.get("ok_threshold")
        self.gauge.set_thresholds(ng, ok)
        if ng is None:
            self.threshold_label.setText("The model has no threshold: calibrate it to get decisions.")
        else:
            band = f", REVIEW from {ok:.4g}" if ok is not None and ok < ng else ""
            self.threshold_label.setText(f"NG from {ng:.4g}{band}")

    def _on_notice(self, text: str) -> None:
        self.notice_label.setText(text)

    def _on_finished(self, summary: dict) -> None:
        self._update_controls()
        where = f" Log: {summary.get('log')}" if summary.get("log") else ""
        error = f" ({summary['source_error']})" if summary.get("source_error") else ""
        self.status.setText(f"Stopped: {summary.get('ended_by', 'stopped')}{error}, {summary.get('images', 0)} "
                            f"images.{where}")

    def _on_failed(self, message: str) -> None:
        self._update_controls()
        self.status.setText(f"Could not run: {message}")

    # ------------------------------------------------------------------ actions
    def open_result(self, result) -> None:
        if self.open_handler is not None:
            self.open_handler(result)
        else:
            self.show_result_dialog(result)

    def show_result_dialog(self, result) -> LiveResultDialog:
        dialog = LiveResultDialog(result, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def toggle_full_screen(self) -> None:
        window = self.window()
        full = not window.isFullScreen()
        if full:
            window.showFullScreen()
        else:
            window.showNormal()
        self.full_button.setChecked(full)
        self.fullScreenToggled.emit(full)
