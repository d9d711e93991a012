"""Step 3 - Threshold: choose the OK/NG image threshold and the pixel threshold for outlines.

When a model is active and a dataset loaded, a worker computes the model's evaluation on
the test split (``evaluation_for``, cached per model) and the curves
(:func:`~workbench.gui.qtmodels.threshold_data.prepare_threshold_data`). Then everything is
linked to ONE image threshold, held in raw score units (:attr:`ThresholdPanel.threshold`):
dragging the histogram line, typing a value, clicking a ROC/PR point, choosing a preset or
loading a saved calibration all go through :meth:`ThresholdPanel.set_threshold`, which
updates every view and emits ``thresholdChanged(image_threshold, pixel_threshold)``.

A move costs two ``searchsorted`` on pre-sorted scores, the core's exact interval at one
threshold and a few label / marker updates; curves are never recomputed while dragging.
Presets, normalisation, intervals and saved calibrations all come from
``workbench.core.calibration``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView, QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QGroupBox,
    QHBoxLayout, QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton, QRadioButton, QScrollArea,
    QSpinBox, QSplitter, QStyle, QTableView, QVBoxLayout, QWidget,
)

from workbench.core.calibration import (
    Calibration, InspectionPolicy, Interval, calibrate, choose_threshold, denormalize, load_calibrations,
    load_policy, normalize_scores, policy_report, rate_intervals, sample_size_warning, save_calibration, weak_model_warning,
)
from workbench.core.calibration.area import KINDS, InspectedArea
from workbench.core.jobs import ProgressEvent
from workbench.core.labels.storage import dataset_labels_dir
from workbench.core.metrics import Confusion
from workbench.core.labels.reviewed import reviewed_records
from workbench.gui.qtmodels.threshold_data import (ThresholdData, pixel_threshold_data, prepare_threshold_data,
                                                   relabel_threshold_data)
from workbench.gui.qtmodels.threshold_recall import DefectRecallModel
from workbench.gui.session import Session
from workbench.gui.widgets import errors
from workbench.gui.widgets.threshold_metrics import ConfusionView
from workbench.gui.widgets.threshold_plots import CurvePlot, ProPlot, ScoreHistogram
from workbench.gui.workers import Worker

log = logging.getLogger(__name__)

PRESET_TITLES = {
    "max_f1": "Maximise F1",
    "false_alarm": "False alarms at most",
    "recall": "Recall at least",
    "manual": "Manual",
}
PRESET_TIPS = {
    "max_f1": "The threshold with the best F1 on the labelled test images (the highest one among ties)",
    "false_alarm": "The lowest threshold whose false-alarm rate on good images is at most X%: "
                   "among all cuts with acceptable false rejects, the one catching the most defects",
    "recall": "The highest threshold whose recall on defective images is at least Y%: "
              "among all cuts catching enough defects, the one rejecting the fewest good parts",
    "manual": "Drag the line, type a value or click a ROC/PR point",
}
PIXEL_PRESET_TITLES = {
    "f1": "Best pixel F1",
    "good_max": "Above every good pixel",
    "manual": "Manual",
    "none": "None (no outlines)",
}
PIXEL_PRESET_TIPS = {
    "f1": "The pixel threshold with the best F1 over all pixels of the test images (needs defect masks)",
    "good_max": "Just above the highest pixel score of any good test image: no outline on good parts",
    "manual": "Type a pixel threshold (raw anomaly-map units)",
    "none": "Store no pixel threshold: only the OK/NG verdict",
}
NORMALIZATION_TITLES = {
    "raw": "Raw model score",
    "minmax": "Min–max on validation good",
    "quantile": "Quantile (median → 0, max → 1)",
}
DEFAULT_FAR_PERCENT = 1.0
DEFAULT_RECALL_PERCENT = 95.0
ACTIVE_MARK = "  (active)"
PIXEL_UPDATE_DELAY_MS = 800  # after the last reviewed verdict, the PRO curve and pixel presets follow


class ThresholdPanel(QWidget):
    """Histogram, ROC, PR and PRO plots, presets, confusion matrix and named calibrations.

    Signals: ``thresholdChanged(float image_threshold, object pixel_threshold)`` (raw score
    units; the pixel threshold is a float or None) after every change, ``calibrationSaved(str)``
    after a calibration was written into the model package, ``dataLoaded()`` when an
    evaluation is shown.
    """

    thresholdChanged = Signal(float, object)
    policyChanged = Signal(object, bool)  # (InspectionPolicy on screen, whether it differs from the saved one)
    calibrationSaved = Signal(str)
    dataLoaded = Signal()
    pixelUpdated = Signal()  # the pixel metrics follow reviewed labels (after an incremental update)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.data: ThresholdData | None = None
        self.job: Worker | None = None
        self.threshold: float | None = None  # raw image threshold: the one the whole panel shows
        self.pixel_threshold: float | None = None  # raw anomaly-map units
        self.ok_threshold: float | None = None  # raw; scores in [ok, threshold) go to REVIEW (None: no band)
        self.roi: np.ndarray | None = None  # inspected area on screen (image coordinates; None: everywhere)
        self.ignore: np.ndarray | None = None
        self.drawn: dict[str, InspectedArea] = {}  # the areas as drawn (mask + polygons), kind -> area
        self.normalization = "raw"
        self._interval_cache: dict[tuple[int, int], dict[str, Interval]] = {}
        self._report_cache: dict[tuple[int, ...], dict] = {}
        self._pending_area: InspectionPolicy | None = None  # masks for the next refresh (an edited area)
        self._keep_on_screen: InspectionPolicy | None = None  # thresholds to restore after that refresh
        self._stale = True  # the model or dataset changed since the data were computed
        self._source = None  # (model path, dataset root, dataset name) of self.data / the running job
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(0)  # coalesces datasetChanged + activeModelChanged
        self._refresh_timer.timeout.connect(self._refresh_if_visible)
        self._label_edit_seen = False
        self.pixel_job: Worker | None = None  # the background pixel-metric update after reviewed labels changed
        self._pixel_timer = QTimer(self)
        self._pixel_timer.setSingleShot(True)
        self._pixel_timer.setInterval(PIXEL_UPDATE_DELAY_MS)
        self._pixel_timer.timeout.connect(self._start_pixel_update)

        self.recall_model = DefectRecallModel(self)

        self.header = QLabel("")
        self.header.setObjectName("description")
        self.header.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        self.status.setVisible(False)
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.progress)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        split.addWidget(self._build_controls())
        split.addWidget(self._build_plots())
        split.addWidget(self._build_results())
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 0)
        split.splitterMoved.connect(self._on_splitter_moved)
        self.splitter = split
        self._user_split = False  # until the user drags a handle, the plots get all spare width

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(split, 1)

        # bound methods (not lambdas): Qt drops these connections when the panel is deleted
        session.activeModelChanged.connect(self._source_changed)
        session.datasetChanged.connect(self._source_changed)
        session.workspaceChanged.connect(self._source_changed)
        self._set_enabled(False)
        self._show_header()

    # ------------------------------------------------------------------ building
    def _build_controls(self) -> QWidget:
        # image threshold
        self.preset_group = QButtonGroup(self)
        self.preset_buttons: dict[str, QRadioButton] = {}
        for i, (key, title) in enumerate(PRESET_TITLES.items()):
            button = QRadioButton(title)
            button.setToolTip(PRESET_TIPS[key])
            self.preset_group.addButton(button, i)
            self.preset_buttons[key] = button
        self.preset_buttons["max_f1"].setChecked(True)
        self.far_spin = QDoubleSpinBox()
        self.far_spin.setRange(0.0, 99.0)
        self.far_spin.setDecimals(2)
        self.far_spin.setSingleStep(0.5)
        self.far_spin.setSuffix(" %")
        self.far_spin.setValue(DEFAULT_FAR_PERCENT)
        self.far_spin.setToolTip("X: the highest acceptable share of good parts rejected")
        self.recall_spin = QDoubleSpinBox()
        self.recall_spin.setRange(0.1, 100.0)
        self.recall_spin.setDecimals(2)
        self.recall_spin.setSingleStep(1.0)
        self.recall_spin.setSuffix(" %")
        self.recall_spin.setValue(DEFAULT_RECALL_PERCENT)
        self.recall_spin.setToolTip("Y: the lowest acceptable share of defective parts caught")
        for spin in (self.far_spin, self.recall_spin):
            spin.setKeyboardTracking(False)
            spin.setMinimumWidth(92)
        presets = QGridLayout()
        presets.setVerticalSpacing(4)
        presets.addWidget(self.preset_buttons["max_f1"], 0, 0, 1, 2)
        presets.addWidget(self.preset_buttons["false_alarm"], 1, 0)
        presets.addWidget(self.far_spin, 1, 1)
        presets.addWidget(self.preset_buttons["recall"], 2, 0)
        presets.addWidget(self.recall_spin, 2, 1)
        presets.addWidget(self.preset_buttons["manual"], 3, 0, 1, 2)
        presets.setColumnStretch(0, 1)

        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setObjectName("thresholdValue")
        self.threshold_spin.setKeyboardTracking(False)  # typing moves the threshold on Enter / focus out
        self.threshold_spin.setRange(-1e9, 1e9)
        self.threshold_spin.setDecimals(4)
        self.threshold_spin.setToolTip("Images scoring at or above this value are NG (in the score scale "
                                       "chosen below; stored in raw model units)")
        self.raw_label = QLabel("")
        self.raw_label.setObjectName("hint")
        self.raw_label.setVisible(False)
        raw_width = self.raw_label.fontMetrics().horizontalAdvance("= -0.000000e+00 raw score") + 8
        self.raw_label.setFixedSize(raw_width, self.raw_label.sizeHint().height())
        self.norm_combo = QComboBox()
        for key, title in NORMALIZATION_TITLES.items():
            self.norm_combo.addItem(title, key)
        for combo in (self.norm_combo,):
            self._compact(combo)
        self.norm_combo.setToolTip("Score scale shown on the histogram and in the threshold box. Min–max and "
                                   "quantile use the good validation images held out at training; thresholds "
                                   "are always stored in raw units.")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.band_check = QCheckBox("OK below")
        self.band_check.setObjectName("reviewBand")
        self.band_check.setToolTip("A REVIEW band: OK below this value, NG from the threshold, REVIEW (a person "
                                   "looks) in between")
        self.ok_spin = QDoubleSpinBox()
        self.ok_spin.setObjectName("okThresholdValue")
        self.ok_spin.setKeyboardTracking(False)
        self.ok_spin.setRange(-1e9, 1e9)
        self.ok_spin.setDecimals(4)
        self.ok_spin.setEnabled(False)
        self.ok_spin.setToolTip("Images scoring below this value are OK; between it and the threshold: REVIEW")
        self.review_label = QLabel("")
        self.review_label.setObjectName("reviewShare")
        self.review_label.setWordWrap(True)
        form.addRow("Threshold", self.threshold_spin)
        form.addRow("", self.raw_label)
        form.addRow(self.band_check, self.ok_spin)
        form.addRow("", self.review_label)
        form.addRow("Score scale", self.norm_combo)
        self.warning = QLabel("")
        self.warning.setObjectName("thresholdWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("QLabel { color: #92400e; background: #fef3c7; border: 1px solid #fcd34d; "
                                   "border-radius: 4px; padding: 4px; }")
        self.warning.setVisible(False)
        self.weak_warning = QLabel("")
        self.weak_warning.setObjectName("weakModelWarning")
        self.weak_warning.setWordWrap(True)
        self.weak_warning.setStyleSheet(self.warning.styleSheet())
        self.weak_warning.setVisible(False)
        self.recheck_warning = QLabel("")  # the model was updated since it was calibrated
        self.recheck_warning.setObjectName("recheckWarning")
        self.recheck_warning.setWordWrap(True)
        self.recheck_warning.setStyleSheet(self.warning.styleSheet())
        self.recheck_warning.setVisible(False)
        image_box = QGroupBox("Image threshold (OK / REVIEW / NG)")
        lay = QVBoxLayout(image_box)
        lay.addLayout(presets)
        lay.addLayout(form)
        lay.addWidget(self.warning)
        lay.addWidget(self.weak_warning)
        lay.addWidget(self.recheck_warning)

        # pixel threshold
        self.pixel_group = QButtonGroup(self)
        self.pixel_buttons: dict[str, QRadioButton] = {}
        for i, (key, title) in enumerate(PIXEL_PRESET_TITLES.items()):
            button = QRadioButton(title)
            button.setToolTip(PIXEL_PRESET_TIPS[key])
            self.pixel_group.addButton(button, i)
            self.pixel_buttons[key] = button
        self.pixel_buttons["f1"].setChecked(True)
        self.pixel_spin = QDoubleSpinBox()
        self.pixel_spin.setKeyboardTracking(False)
        self.pixel_spin.setRange(-1e5, 1e5)
        self.pixel_spin.setDecimals(4)
        self.pixel_spin.setToolTip("Pixels scoring at or above this value are outlined (raw anomaly-map units)")
        self.min_area_spin = QSpinBox()
        self.min_area_spin.setRange(0, 10_000_000)
        self.min_area_spin.setSuffix(" px")
        self.min_area_spin.setToolTip("Defect regions smaller than this many pixels are not outlined")
        pixel_box = QGroupBox("Pixel threshold (defect outlines)")
        lay = QVBoxLayout(pixel_box)
        lay.setSpacing(4)
        for button in self.pixel_buttons.values():
            lay.addWidget(button)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Pixel threshold", self.pixel_spin)
        form.addRow("Min. defect area", self.min_area_spin)
        lay.addLayout(form)

        # inspected area
        self.ignore_button = QPushButton("Ignore…")
        self.ignore_button.setToolTip("Paint where the model must never look (serial numbers, fixtures) over a "
                                      "test image; ignored pixels never raise a score and never count in metrics")
        self.roi_button = QPushButton("ROI…")
        self.roi_button.setToolTip("Region of interest: paint the only area to inspect over a test image")
        self.clear_area_button = QPushButton("Clear")
        self.clear_area_button.setToolTip("Inspect the whole image again")
        self.area_label = QLabel("Whole image inspected.")
        self.area_label.setObjectName("hint")
        self.area_label.setWordWrap(True)
        area_row = QHBoxLayout()
        area_row.addWidget(self.ignore_button)
        area_row.addWidget(self.roi_button)
        area_row.addWidget(self.clear_area_button)
        area_box = QGroupBox("Inspected area")
        lay = QVBoxLayout(area_box)
        lay.addLayout(area_row)
        lay.addWidget(self.area_label)

        # saved calibrations
        self.calib_combo = QComboBox()
        self.calib_combo.setToolTip("Calibrations stored in this model's package")
        self._compact(self.calib_combo)
        self.load_button = QPushButton("Load")
        self.load_button.setToolTip("Set the thresholds of the selected calibration")
        self.name_edit = QLineEdit("default")
        self.name_edit.setPlaceholderText("calibration name, e.g. strict")
        self.name_edit.setToolTip("Several named calibrations can live in one model (e.g. strict, lenient); "
                                  "saving under an existing name replaces it")
        self.save_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton), "Save")
        self.save_button.setObjectName("primary")
        self.save_button.setToolTip("Write these thresholds into the model package as the active calibration")
        load_row = QHBoxLayout()
        load_row.addWidget(self.calib_combo, 1)
        load_row.addWidget(self.load_button)
        save_row = QHBoxLayout()
        save_row.addWidget(self.name_edit, 1)
        save_row.addWidget(self.save_button)
        self.saved_label = QLabel("")
        self.saved_label.setObjectName("hint")
        self.saved_label.setWordWrap(True)
        calib_box = QGroupBox("Calibrations in the model")
        lay = QVBoxLayout(calib_box)
        lay.addLayout(load_row)
        lay.addLayout(save_row)
        lay.addWidget(self.saved_label)

        inner = QWidget()
        column = QVBoxLayout(inner)
        column.setContentsMargins(0, 0, 4, 0)
        column.addWidget(image_box)
        column.addWidget(pixel_box)
        column.addWidget(area_box)
        column.addWidget(calib_box)
        column.addWidget(self._build_recall_table(), 1)
        scroll = QScrollArea()
        scroll.setObjectName("paramScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        # never clip the controls: the column is at least as wide as its content plus a scroll bar
        scroll.setMinimumWidth(inner.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 4)

        self.preset_group.idClicked.connect(lambda _id: self.apply_preset())
        self.far_spin.valueChanged.connect(lambda _v: self._target_edited("false_alarm"))
        self.recall_spin.valueChanged.connect(lambda _v: self._target_edited("recall"))
        self.threshold_spin.valueChanged.connect(self._on_spin_changed)
        self.norm_combo.currentIndexChanged.connect(lambda _i: self.set_normalization(self.norm_combo.currentData()))
        self.pixel_group.idClicked.connect(lambda _id: self.apply_pixel_preset())
        self.pixel_spin.valueChanged.connect(self._on_pixel_spin_changed)
        self.min_area_spin.valueChanged.connect(lambda _v: self._emit_threshold())
        self.band_check.toggled.connect(self._on_band_toggled)
        self.ok_spin.valueChanged.connect(lambda v: self.set_ok_threshold(self.to_raw(v)) if self.data else None)
        self.ignore_button.clicked.connect(lambda: self.edit_area("ignore"))
        self.roi_button.clicked.connect(lambda: self.edit_area("roi"))
        self.clear_area_button.clicked.connect(lambda: self.set_area(None, None))
        self.load_button.clicked.connect(lambda: self.load_calibration())
        self.save_button.clicked.connect(lambda: self.save_calibration())
        self.name_edit.returnPressed.connect(lambda: self.save_calibration())
        return scroll

    def _build_plots(self) -> QWidget:
        self.histogram = ScoreHistogram()
        self.roc_plot = CurvePlot("ROC (image level)", "false-alarm rate", "recall", diagonal=True, legend=True)
        self.pr_plot = CurvePlot("Precision–recall", "recall", "precision")
        self.log_check = QCheckBox("Log-scale counts")
        self.log_check.setToolTip("Show the histogram counts on a log scale (rare high-scoring good images)")
        hint = QLabel("Drag the black line, type a value or click a ROC / PR point.")
        hint.setToolTip("Orange dots: the current operating point; error bars: its exact 95% interval")
        hint.setObjectName("hint")
        hint.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(hint, 1)
        bar.addWidget(self.log_check)
        grid = QGridLayout()
        grid.setSpacing(6)
        grid.addWidget(self.histogram, 0, 0, 1, 2)  # the one to drag: full width
        grid.addWidget(self.roc_plot, 1, 0)
        grid.addWidget(self.pr_plot, 1, 1)
        grid.setRowStretch(0, 5)
        grid.setRowStretch(1, 4)
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addLayout(bar)
        lay.addLayout(grid, 1)

        self.histogram.thresholdDragged.connect(lambda v: self.set_threshold(self.to_raw(v), "line"))
        self.histogram.okThresholdDragged.connect(lambda v: self.set_ok_threshold(self.to_raw(v)))
        self.roc_plot.pointPicked.connect(lambda t: self.set_threshold(t, "curve"))
        self.pr_plot.pointPicked.connect(lambda t: self.set_threshold(t, "curve"))
        self.log_check.toggled.connect(self.histogram.set_log_scale)
        return box

    def _build_recall_table(self) -> QWidget:
        self.recall_view = QTableView()
        self.recall_view.setObjectName("defectRecall")
        self.recall_view.setModel(self.recall_model)
        self.recall_view.verticalHeader().setVisible(False)
        self.recall_view.setAlternatingRowColors(True)
        self.recall_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.recall_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.recall_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Fixed widths: ResizeToContents would re-measure every cell on each threshold move.
        header = self.recall_view.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        metrics = self.recall_view.fontMetrics()
        bold = header.fontMetrics()
        header.setMinimumSectionSize(24)
        for col, sample in ((1, "000"), (2, "000"), (3, "FA 100.0%")):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
            title = str(self.recall_model.headerData(col, Qt.Orientation.Horizontal))
            header.resizeSection(col, max(metrics.horizontalAdvance(sample), bold.horizontalAdvance(title)) + 20)
        self.recall_view.setMinimumHeight(150)
        table_box = QGroupBox("Recall per defect type")
        lay = QVBoxLayout(table_box)
        lay.addWidget(self.recall_view)
        return table_box


    def _build_results(self) -> QWidget:
        self.confusion_view = ConfusionView()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setObjectName("hint")
        self.summary.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        # fixed size: its text changes on every move and must not re-lay out the panel
        self.summary.setFixedSize(280, 2 * self.summary.fontMetrics().lineSpacing() + 4)
        conf_box = QGroupBox("At this threshold")
        lay = QVBoxLayout(conf_box)
        lay.addWidget(self.confusion_view)
        lay.addWidget(self.summary)

        self.pro_plot = ProPlot()
        box = QWidget()
        box.setMinimumWidth(300)
        lay = QVBoxLayout(box)
        lay.setContentsMargins(4, 0, 0, 0)
        lay.addWidget(conf_box)
        lay.addWidget(self.pro_plot, 1)
        return box

    # ------------------------------------------------------------------ loading
    def _current_source(self):
        model, dataset = self.session.active_model, self.session.dataset
        if model is None or dataset is None:
            return None
        return (str(model.path), str(dataset.root), dataset.name)

    def _source_changed(self, *_args) -> None:
        self._stale = True
        self._refresh_timer.start()

    def _refresh_if_visible(self) -> None:
        if self.isVisible():
            self.refresh()
        else:
            self._show_header()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        if not self._user_split:
            QTimer.singleShot(0, self._fit_columns)  # once the splitter has its new width

    def _fit_columns(self) -> None:
        """Controls and results get what they need (a little more on wide screens); the
        plots get the rest. QSplitter alone would shrink the plots first."""
        split = self.splitter
        total = sum(split.sizes())
        if self._user_split or total <= 0:
            return
        left = max(split.widget(0).minimumWidth(), split.widget(0).minimumSizeHint().width())
        right = max(split.widget(2).minimumWidth(), split.widget(2).minimumSizeHint().width())
        extra = min(max(0, total - left - right - 600) // 3, 90)  # wide screens: widen the side columns a bit
        left, right = left + extra, right + extra
        split.setSizes([left, max(total - left - right, 0), right])

    def _on_splitter_moved(self, _pos: int, _index: int) -> None:
        self._user_split = True

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        if self._stale:
            self._refresh_timer.start()

    def _reviewed_labels(self) -> tuple[dict | None, Path | None]:
        """Labels reviewed in the Review step for the current dataset (read here, in the GUI thread)."""
        workspace, entry = self.session.workspace, self.session.dataset_entry
        if workspace is None or entry is None:
            return None, None
        return workspace.labels(entry.id) or None, dataset_labels_dir(workspace.labels_dir, entry.id)

    def refresh(self, force: bool = False) -> Worker | None:
        """Compute (or reuse) the evaluation of the active model on the current dataset."""
        source = self._current_source()
        self._stale = False
        if not force and source == self._source and (source is None or self.data is not None or self.busy):
            return self.job if self.busy else None  # already shown (or being computed)
        self._cancel_job()
        self._source = source
        self.clear()
        model, dataset = self.session.active_model, self.session.dataset
        if model is None or dataset is None:
            return None
        if not model.exists:
            self._set_status(f"The folder of model '{model.name}' is missing ({model.path}).")
            return None
        if not dataset.test:
            self._set_status("The current dataset has no test split: thresholds are calibrated on labelled "
                             "test images (good and, ideally, defective).")
            return None
        labels, labels_dir = self._reviewed_labels()
        if self._pending_area is None:
            self._pending_area = self._workspace_area()
        worker = Worker(prepare_threshold_data, model.path, dataset, labels=labels, labels_dir=labels_dir,
                        area=self._pending_area)
        self._pending_area = None
        worker.progress.connect(self._on_progress)
        worker.finished.connect(lambda data, w=worker: self._on_data(w, data))
        worker.failed.connect(lambda msg, _d, w=worker: self._on_failed(w, msg))
        worker.cancelled.connect(lambda w=worker: self._on_job_ended(w))
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self._set_status(f"Evaluating {model.name} on the test split…")
        self.job = self.session.jobs.start(worker, f"Threshold curves for {model.name}")
        return worker

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.running

    def _cancel_job(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()
        self.job = None
        self._pixel_timer.stop()
        if self.pixel_job is not None and self.pixel_job.running:
            self.pixel_job.cancel()
        self.pixel_job = None
        self.progress.setVisible(False)

    @Slot(object)
    def _on_progress(self, event: ProgressEvent) -> None:
        self.progress.setValue(int(1000 * event.fraction))
        self._set_status(f"{event.stage}… {event.message}".strip())

    def _on_job_ended(self, worker: Worker) -> None:
        if worker is self.job:
            self.job = None
            self.progress.setVisible(False)
            self._set_status("Cancelled.")
            self._source = None

    def _on_failed(self, worker: Worker, message: str) -> None:
        if worker is self.job:
            self.job = None
            self.progress.setVisible(False)
            self._set_status(f"Could not evaluate the model: {message}")
            self._source = None  # a later refresh tries again

    def _on_data(self, worker: Worker, data: ThresholdData) -> None:
        if worker is not self.job:
            return  # a stale job (the model or dataset changed meanwhile)
        self.job = None
        self.progress.setVisible(False)
        self.set_data(data)

    # ------------------------------------------------------------------ reviewed labels
    def on_label_edited(self, dataset_id: int, key: str, what: str) -> None:
        """One reviewed label changed in the Review step. A verdict or class (``what`` =
        "verdict") updates everything image-level at once, without clearing the panel
        (:meth:`update_label`); the pixel parts follow from a background job. Anything else
        (a mask) only starts that background job."""
        self._label_edit_seen = True
        self.update_label(dataset_id, key, mask_edited=what == "mask")

    def on_labels_changed(self, dataset_id: int) -> None:
        """Reviewed labels changed in bulk (an import): evaluate again."""
        if self._label_edit_seen:  # the edit just announced by on_label_edited
            self._label_edit_seen = False
            return
        self.refresh(force=True)

    def _showing_dataset(self, dataset_id: int) -> bool:
        entry = self.session.dataset_entry
        return self.data is not None and entry is not None and entry.id == dataset_id and not self.busy \
            and self.data.base_records is not None and self._source == self._current_source()

    def update_label(self, dataset_id: int, key: str, mask_edited: bool = False) -> bool:
        """Apply the reviewed label of one image to what is shown (ground truth of the matrix,
        rates, curves, recall per defect type, preset thresholds) in milliseconds; schedules
        the pixel metrics' update when the image's pixel ground truth changed. False when the
        panel cannot update incrementally (nothing shown for that dataset)."""
        if not self._showing_dataset(dataset_id):
            if self.data is not None or self.busy:
                self._stale = True
                self._source = None  # recompute when shown next
                if self.isVisible():
                    self._refresh_timer.start()
            return False
        assert self.data is not None
        index = self.data.keys.get(key)
        if index is None:
            return True  # not a test image: nothing here depends on it
        labels, labels_dir = self._reviewed_labels()
        label = (labels or {}).get(key)
        record = reviewed_records([self.data.base_records[index]], {key: label} if label else {}, labels_dir,
                                  self.session.dataset.root).records[0]
        old = self.data.evaluation.records[index]
        if record == old:
            if mask_edited and record.is_anomalous:  # same mask file, new pixels
                self._schedule_pixel_update(dataset_id)
            return True
        records = list(self.data.evaluation.records)
        records[index] = record
        before = self.policy()
        self.data = relabel_threshold_data(self.data, records)
        self._show_labels_changed()
        after = self.policy()
        if before is None or after is None or before.fingerprint() != after.fingerprint():
            self._emit_threshold()  # the threshold moved (a preset): Review decides anew
        if mask_edited or record.is_anomalous != old.is_anomalous or record.mask_path != old.mask_path:
            self._schedule_pixel_update(dataset_id)
        return True

    def _show_labels_changed(self) -> None:
        """Views that depend on the ground truth, after :meth:`update_label` (thresholds kept;
        a preset other than Manual is applied again on the new labels)."""
        data = self.data
        assert data is not None
        self._interval_cache = {}
        self._report_cache = {}
        ev = data.evaluation
        self._show_header()
        self.roc_plot.set_curve(data.roc, f"ROC (AUROC {ev.image_auroc:.3f})" if ev.image_auroc is not None else "ROC",
                                "Needs good and defective test images")
        self.pr_plot.set_curve(data.pr, "", "Needs defective test images")
        self.recall_model.set_records(ev.records, data.scores)
        has_def, has_good = data.index.n_defect > 0, data.index.n_good > 0
        self.preset_buttons["max_f1"].setEnabled(has_def and has_good)
        self.preset_buttons["recall"].setEnabled(has_def)
        self.preset_buttons["false_alarm"].setEnabled(has_good)
        labels = data.labels
        shown = normalize_scores(data.scores, self.normalization, data.image_stats)
        self.histogram.set_scores(shown[~labels], shown[labels],
                                  None if self.threshold is None else self.to_display(self.threshold))
        preset = self.current_preset()
        if preset != "manual" and self.preset_buttons[preset].isEnabled():
            try:
                self.threshold = choose_threshold(data.labels, data.scores, preset, self.preset_target(preset))
            except ValueError as exc:
                self._set_status(str(exc))
        if self.threshold is not None:
            self._show_threshold()

    def _schedule_pixel_update(self, dataset_id: int) -> None:
        """Recompute the pixel parts (PRO curve, pixel presets) in the background, once the
        user pauses (several verdicts in a row start one job)."""
        if not self._showing_dataset(dataset_id):
            if self.data is not None:
                self._stale, self._source = True, None
                if self.isVisible():
                    self._refresh_timer.start()
            return
        self._pixel_timer.start()

    def _start_pixel_update(self) -> Worker | None:
        if self.data is None or self.busy:
            return None
        if self.pixel_job is not None and self.pixel_job.running:
            self.pixel_job.cancel()
        data = self.data
        area = data.area if data.area is not None and data.area.has_masks else None
        worker = Worker(pixel_threshold_data, data.evaluation, area, image_stats=data.image_stats)
        worker.finished.connect(lambda new, w=worker, d=data: self._on_pixel_data(w, d, new))
        self.pixel_job = self.session.jobs.start(worker, "Updating pixel metrics")
        return worker

    def _on_pixel_data(self, worker: Worker, started_on: ThresholdData, new: ThresholdData) -> None:
        if worker is not self.pixel_job:
            return
        self.pixel_job = None
        data = self.data
        if data is None or data.base_records is not started_on.base_records:
            return  # other data are shown now
        if [r.label for r in new.evaluation.records] != [r.label for r in data.evaluation.records] or \
                [r.mask_path for r in new.evaluation.records] != [r.mask_path for r in data.evaluation.records]:
            self._pixel_timer.start()  # labels changed again meanwhile
            return
        ev = dataclasses.replace(data.evaluation, pixel_auroc=new.evaluation.pixel_auroc, aupro=new.evaluation.aupro,
                                 n_without_mask=new.evaluation.n_without_mask)
        self.data = dataclasses.replace(data, evaluation=ev, pro=new.pro, aupro=new.aupro,
                                        pixel_thresholds=new.pixel_thresholds)
        self.pro_plot.set_curve(self.data.pro, self.data.aupro, "No defect masks: no PRO curve")
        self.pro_plot.set_pixel_threshold(self.pixel_threshold)
        for key in ("f1", "good_max"):
            value = self.data.pixel_thresholds.get(key)
            self.pixel_buttons[key].setEnabled(value is not None)
            self.pixel_buttons[key].setText(PIXEL_PRESET_TITLES[key] + (f"  ({value:.4g})" if value is not None else ""))
        if self.current_pixel_preset() in ("f1", "good_max"):
            self.apply_pixel_preset()
        self._show_header()
        self.pixelUpdated.emit()

    # ------------------------------------------------------------------ data
    def clear(self) -> None:
        self.data = None
        self.threshold = None
        self.pixel_threshold = None
        self.ok_threshold = None
        self.roi = self.ignore = None
        self.histogram.set_scores(np.empty(0), np.empty(0))
        self.histogram.set_ok_threshold(None)
        self.review_label.setText("")
        self.weak_warning.setVisible(False)
        self.roc_plot.set_curve(None)
        self.pr_plot.set_curve(None)
        self.pro_plot.set_curve(None, None)
        self.confusion_view.clear()
        self.recall_model.clear()
        self.calib_combo.clear()
        self.summary.setText("")
        self.warning.setVisible(False)
        self.saved_label.setText("")
        self._set_status("")
        self._set_enabled(False)
        self._show_header()

    def set_data(self, data: ThresholdData) -> None:
        """Show ``data`` and choose the starting threshold: the model's active calibration if
        it has one, else the best-F1 preset (or a false-alarm target without defects)."""
        self.data = data
        self.threshold = None
        self.ok_threshold = None
        area = data.area or data.saved_policy
        self.roi = None if area is None else area.roi
        self.ignore = None if area is None else area.ignore
        self._show_area()
        self._interval_cache = {}
        self._report_cache = {}
        self._stale = False
        self._refresh_timer.stop()
        ev = data.evaluation
        self._show_header()
        self._show_recheck()
        self._set_status(" ".join(data.notes))
        self.roc_plot.set_curve(data.roc, f"ROC (AUROC {ev.image_auroc:.3f})" if ev.image_auroc is not None else "ROC",
                                "Needs good and defective test images")
        self.pr_plot.set_curve(data.pr, "", "Needs defective test images")
        self.pro_plot.set_curve(data.pro, data.aupro, "No defect masks: no PRO curve")
        self.recall_model.set_records(ev.records, data.scores)

        for key in ("minmax", "quantile"):
            item = self.norm_combo.model().item(self.norm_combo.findData(key))
            item.setEnabled(bool(data.image_stats))
            item.setToolTip("" if data.image_stats else "This model has no score statistics of good images; "
                                                        "retrain it to use this scale.")
        self._set_enabled(True)
        has_def, has_good = data.index.n_defect > 0, data.index.n_good > 0
        self.preset_buttons["max_f1"].setEnabled(has_def and has_good)
        self.preset_buttons["recall"].setEnabled(has_def)
        self.preset_buttons["false_alarm"].setEnabled(has_good)
        for key in ("f1", "good_max"):
            self.pixel_buttons[key].setEnabled(data.pixel_thresholds.get(key) is not None)
            value = data.pixel_thresholds.get(key)
            suffix = f"  ({value:.4g})" if value is not None else ""
            self.pixel_buttons[key].setText(PIXEL_PRESET_TITLES[key] + suffix)
        self._fill_calibrations()

        self._set_normalization_silently("raw")
        self._apply_normalization(None)
        pixel_default = next((k for k in ("f1", "good_max") if data.pixel_thresholds.get(k) is not None), "none")
        self._check(self.pixel_buttons[pixel_default])
        self.apply_pixel_preset(emit=False)
        keep, self._keep_on_screen = self._keep_on_screen, None
        if keep is not None:  # an edited inspected area: the thresholds on screen stay as they were
            self._restore_thresholds(keep)
        elif data.active_calibration and data.active_calibration in data.calibrations:
            self.load_calibration(data.active_calibration)
        else:
            preset = "max_f1" if data.has_both_classes else "false_alarm" if has_good else "manual"
            self._check(self.preset_buttons[preset])
            if self.apply_preset() is None:
                self.set_threshold(float(np.median(data.scores)), "preset")
        self.dataLoaded.emit()

    def _set_enabled(self, on: bool) -> None:
        for widget in (*self.preset_buttons.values(), self.far_spin, self.recall_spin, self.threshold_spin,
                       self.norm_combo, *self.pixel_buttons.values(), self.pixel_spin, self.min_area_spin,
                       self.calib_combo, self.load_button, self.name_edit, self.save_button, self.log_check,
                       self.band_check, self.ignore_button, self.roi_button, self.clear_area_button):
            widget.setEnabled(on)

    def _show_header(self) -> None:
        model, entry = self.session.active_model, self.session.dataset_entry
        if model is None or self.session.dataset is None:
            self.header.setText("Train or select a model (step 2) on a dataset with labelled test images to "
                                "calibrate its thresholds.")
            return
        text = f"<b>{model.name}</b> on <b>{entry.name if entry else self.session.dataset.name}</b> (test split)"
        if self.data is not None:
            ev = self.data.evaluation
            parts = [f"{ev.n_good} good / {ev.n_defect} defective images"]
            if ev.image_auroc is not None:
                parts.append(f"image AUROC {ev.image_auroc:.3f}")
            if ev.aupro is not None:
                parts.append(f"AUPRO {ev.aupro:.3f}")
            text += " · " + " · ".join(parts)
        self.header.setText(text)

    # ------------------------------------------------------------------ normalisation
    def to_display(self, raw: float) -> float:
        if self.data is None or self.normalization == "raw":
            return float(raw)
        return float(normalize_scores(np.array([raw]), self.normalization, self.data.image_stats)[0])

    def to_raw(self, display: float) -> float:
        if self.data is None or self.normalization == "raw":
            return float(display)
        return denormalize(display, self.normalization, self.data.image_stats)

    def set_normalization(self, kind: str) -> None:
        """Show scores as ``kind`` (raw / minmax / quantile); the threshold stays the same raw value."""
        if self.data is None:
            return
        try:
            normalize_scores(self.data.scores[:1], kind, self.data.image_stats)
        except ValueError as exc:
            self._set_status(str(exc))
            self._set_normalization_silently(self.normalization)
            return
        self._set_normalization_silently(kind)
        self._apply_normalization(self.threshold)
        if self.threshold is not None:
            self._show_threshold()

    def _set_normalization_silently(self, kind: str) -> None:
        self.normalization = kind
        self.norm_combo.blockSignals(True)
        self.norm_combo.setCurrentIndex(self.norm_combo.findData(kind))
        self.norm_combo.blockSignals(False)

    def _apply_normalization(self, threshold: float | None) -> None:
        """Re-bin the histogram and re-scale the threshold box in the display units."""
        assert self.data is not None
        labels = self.data.labels
        shown = normalize_scores(self.data.scores, self.normalization, self.data.image_stats)
        self.histogram.set_scores(shown[~labels], shown[labels],
                                  None if threshold is None else self.to_display(threshold))
        self.histogram.getPlotItem().setLabel(
            "bottom", "score" if self.normalization == "raw" else f"score ({NORMALIZATION_TITLES[self.normalization]})")
        lo, hi = float(shown.min()), float(shown.max())
        span = max(hi - lo, 1e-9)
        decimals = int(min(max(3 - math.floor(math.log10(span)), 2), 9))
        self.threshold_spin.blockSignals(True)
        self.threshold_spin.setDecimals(decimals)
        self.threshold_spin.setRange(lo - span, hi + span)
        self.threshold_spin.setSingleStep(10 ** -(decimals - 1) if span < 1 else span / 100)
        self.threshold_spin.blockSignals(False)

    # ------------------------------------------------------------------ image threshold
    def current_preset(self) -> str:
        return next(k for k, b in self.preset_buttons.items() if b.isChecked())

    def preset_target(self, preset: str | None = None) -> float | None:
        """The target the core's preset takes: a rate in [0, 1], the manual value, or None."""
        preset = preset or self.current_preset()
        if preset == "false_alarm":
            return self.far_spin.value() / 100.0
        if preset == "recall":
            return self.recall_spin.value() / 100.0
        if preset == "manual":
            return self.threshold
        return None

    def select_preset(self, preset: str, target_percent: float | None = None) -> float | None:
        """Choose ``preset`` (with X or Y in percent) and apply it, as the user would."""
        if target_percent is not None:
            spin = self.far_spin if preset == "false_alarm" else self.recall_spin
            spin.blockSignals(True)
            spin.setValue(target_percent)
            spin.blockSignals(False)
        self._check(self.preset_buttons[preset])
        return self.apply_preset()

    def apply_preset(self) -> float | None:
        """Set the threshold the core's definition of the checked preset gives (None on error)."""
        self._update_warning()
        preset = self.current_preset()
        if self.data is None or preset == "manual":
            return self.threshold
        try:
            value = choose_threshold(self.data.labels, self.data.scores, preset, self.preset_target(preset))
        except ValueError as exc:
            self._set_status(str(exc))
            return None
        self.set_threshold(value, "preset")
        return value

    def _target_edited(self, preset: str) -> None:
        if self.data is None:
            return
        self._check(self.preset_buttons[preset])  # editing X or Y means "use that preset"
        self.apply_preset()

    def _update_warning(self) -> None:
        text = None
        if self.data is not None and self.current_preset() == "false_alarm":
            text = sample_size_warning(self.data.index.n_good, self.far_spin.value() / 100.0)
        self.warning.setText(text or "")
        self.warning.setVisible(bool(text))

    def _on_spin_changed(self, value: float) -> None:
        if self.data is not None:
            self.set_threshold(self.to_raw(value), "spin")

    def set_threshold(self, value: float, source: str = "manual") -> None:
        """Move the one image threshold (raw units) and update every view.

        ``source`` says who moved it: "preset" and "load" keep the checked preset; anything
        else (line, spin, curve, manual) switches the preset to Manual.
        """
        if self.data is None:
            return
        value = float(value)
        if not math.isfinite(value):  # a curve's end points: flag nothing (+inf) or everything (-inf)
            value = float(np.nextafter(self.data.scores.max(), np.inf)) if value > 0 else float(self.data.scores.min())
        self.threshold = value
        if source not in ("preset", "load"):
            self._check(self.preset_buttons["manual"])
            self._update_warning()
        self._show_threshold()
        self._emit_threshold()

    def _show_threshold(self) -> None:
        assert self.data is not None and self.threshold is not None
        raw = self.threshold
        shown = self.to_display(raw)
        self.threshold_spin.blockSignals(True)
        self.threshold_spin.setValue(shown)
        self.threshold_spin.blockSignals(False)
        self.raw_label.setText("" if self.normalization == "raw" else f"= {raw:.6g} raw score")
        self.raw_label.setVisible(self.normalization != "raw")
        self.histogram.set_threshold(shown)

        confusion = self.data.index.confusion(raw)
        intervals = self.intervals(confusion)
        self._show_matrix(confusion)
        far, rec = intervals.get("false_alarm_rate"), intervals.get("recall")
        if self.data.roc is not None:
            self.roc_plot.set_point(confusion.false_alarm_rate, confusion.recall,
                                    (far.low, far.high) if far else None, (rec.low, rec.high) if rec else None)
        if self.data.pr is not None:
            self.pr_plot.set_point(confusion.recall, confusion.precision, (rec.low, rec.high) if rec else None)
        self.recall_model.set_threshold(raw)
        self.summary.setText(
            f"{confusion.tp} of {confusion.tp + confusion.fn} defective images caught, "
            f"{confusion.fp} of {confusion.fp + confusion.tn} good images rejected.")
        self._show_band()
        ev = self.data.evaluation
        weak = weak_model_warning(ev.image_auroc, confusion.false_alarm_rate if self.data.index.n_good else None,
                                  self.session.active_model.method if self.session.active_model else None)
        self.weak_warning.setText(weak or "")
        self.weak_warning.setVisible(bool(weak))

    def intervals(self, confusion: Confusion | None = None) -> dict[str, Interval]:
        """Exact (Clopper-Pearson) 95% intervals at the current threshold from the core, for
        recall, escape, false-alarm and review rates."""
        assert self.data is not None and self.threshold is not None
        # The intervals depend only on how many images of each class are flagged,
        # so thresholds between the same two scores share one result.
        confusion = confusion or self.data.index.confusion(self.threshold)
        key = (confusion.tp, confusion.fp)
        cached = self._interval_cache.get(key)
        if cached is not None:
            return dict(cached)
        out = dict(rate_intervals(self.data.labels, self.data.scores, self.threshold))
        if len(self._interval_cache) > 4096:
            self._interval_cache.clear()
        self._interval_cache[key] = dict(out)
        return out

    def policy_report(self) -> dict:
        """The core's ``policy_report`` at the thresholds on screen: truth x OK / REVIEW / NG and
        rates with exact intervals (the ``at_policy`` block of ``workbench evaluate --json``)."""
        assert self.data is not None and self.threshold is not None
        ok = self.ok_threshold if self.ok_threshold is not None and self.ok_threshold <= self.threshold else None
        verdicts = InspectionPolicy(ng_threshold=self.threshold, ok_threshold=ok).verdicts(self.data.scores)
        # the report depends only on the counts per (truth, verdict): thresholds between the
        # same scores share one result (the intervals cost a few scipy calls)
        labels = self.data.labels
        key = tuple(int(((verdicts == v) & (labels == t)).sum()) for v in ("OK", "REVIEW", "NG", "error")
                    for t in (False, True))
        cached = self._report_cache.get(key)
        if cached is None:
            cached = policy_report(labels, verdicts)
            if len(self._report_cache) > 4096:
                self._report_cache.clear()
            self._report_cache[key] = cached
        return cached

    def _show_matrix(self, confusion: Confusion) -> None:
        self.confusion_view.set_report(self.policy_report(), confusion,
                                       band=self.ok_threshold is not None and self.ok_threshold < self.threshold)

    def confusion(self) -> Confusion:
        """The core ``Confusion`` at the current threshold (what the matrix shows)."""
        assert self.data is not None and self.threshold is not None
        return self.data.index.confusion(self.threshold)

    def _emit_threshold(self) -> None:
        if self.threshold is not None:
            self.thresholdChanged.emit(self.threshold, self.pixel_threshold)
            policy = self.policy()
            if policy is not None:
                self.policyChanged.emit(policy, self.unsaved)

    # ------------------------------------------------------------------ policy (band, area)
    def policy(self) -> InspectionPolicy | None:
        """The inspection policy the controls show (what Save would store)."""
        if self.data is None or self.threshold is None:
            return None
        base = self.data.saved_policy or InspectionPolicy()
        ok = self.ok_threshold if self.ok_threshold is not None and self.ok_threshold <= self.threshold else None
        return base.replace(ng_threshold=self.threshold, ok_threshold=ok, pixel_threshold=self.pixel_threshold,
                            min_defect_area=self.min_area_spin.value(), normalization=self.normalization,
                            roi=self.roi, ignore=self.ignore, source="Threshold step")

    @property
    def unsaved(self) -> bool:
        """Whether the policy on screen differs from the one stored in the model package."""
        policy = self.policy()
        saved = None if self.data is None else self.data.saved_policy
        if policy is None or saved is None:
            return False
        return policy.replace(source="").fingerprint() != saved.replace(source="").fingerprint()

    def _on_band_toggled(self, on: bool) -> None:
        self.ok_spin.setEnabled(on)
        if self.data is None or self.threshold is None:
            return
        if on:
            good = self.data.scores[~self.data.labels]
            start = float(np.quantile(good, 0.9)) if good.size else self.threshold
            self.set_ok_threshold(min(start, self.threshold))
        else:
            self.set_ok_threshold(None)

    def set_ok_threshold(self, value: float | None) -> None:
        """The REVIEW band's lower edge (raw units; None: no band). It never lies above the NG threshold."""
        if self.data is None:
            return
        if value is not None and self.threshold is not None:
            value = min(float(value), self.threshold)
        self.ok_threshold = value
        self.band_check.blockSignals(True)
        self.band_check.setChecked(value is not None)
        self.band_check.blockSignals(False)
        self.ok_spin.setEnabled(value is not None)
        self._show_band()
        if self.threshold is not None:
            self._show_matrix(self.data.index.confusion(self.threshold))
        self._emit_threshold()

    def _show_band(self) -> None:
        """The OK line on the histogram and the share of parts that would go to REVIEW."""
        if self.data is None or self.threshold is None:
            return
        if self.ok_threshold is not None and self.ok_threshold > self.threshold:
            self.ok_threshold = self.threshold
        if self.ok_threshold is None:
            self.histogram.set_ok_threshold(None)
            self.review_label.setText("")
            self.review_label.setMinimumHeight(0)
            return
        shown = self.to_display(self.ok_threshold)
        self.histogram.set_ok_threshold(shown)
        self.ok_spin.blockSignals(True)
        self.ok_spin.setDecimals(self.threshold_spin.decimals())
        self.ok_spin.setRange(self.threshold_spin.minimum(), self.threshold_spin.maximum())
        self.ok_spin.setSingleStep(self.threshold_spin.singleStep())
        self.ok_spin.setValue(shown)
        self.ok_spin.blockSignals(False)
        report = self.policy_report()  # the same core numbers as the matrix
        matrix, iv = report["confusion"], report["rates"].get("review_rate")
        n_review = matrix["good"]["REVIEW"] + matrix["defect"]["REVIEW"]
        n = self.data.scores.size
        # short (two lines in a laptop's column); the interval is in the matrix's rate table
        self.review_label.setText(
            f"REVIEW: {n_review} of {n} parts ({100 * n_review / max(n, 1):.1f}%): "
            f"{matrix['good']['REVIEW']} good, {matrix['defect']['REVIEW']} defective")
        self.review_label.setToolTip(f"Review rate 95% interval: {100 * iv['low']:.1f}–{100 * iv['high']:.1f}% "
                                     "(exact binomial)" if iv else "")
        self.review_label.setMinimumHeight(2 * self.review_label.fontMetrics().lineSpacing() + 2)

    def _restore_thresholds(self, policy: InspectionPolicy) -> None:
        self._check(self.preset_buttons["manual"])
        self.min_area_spin.blockSignals(True)
        self.min_area_spin.setValue(policy.min_defect_area)
        self.min_area_spin.blockSignals(False)
        if policy.pixel_threshold is not None:
            self._check(self.pixel_buttons["manual"])
        self._set_pixel_value(policy.pixel_threshold, emit=False)
        self.ok_threshold = policy.ok_threshold
        self.set_threshold(float(policy.ng_threshold), "load")

    def revert_policy(self) -> None:
        """Back to the policy stored in the model package (thresholds and inspected area)."""
        if self.data is None or self.data.saved_policy is None:
            return
        saved = self.data.saved_policy
        if saved.same_area(self.data.area):
            if self.data.active_calibration in self.data.calibrations:
                self.load_calibration(self.data.active_calibration)
            elif saved.ng_threshold is not None:
                self._restore_thresholds(saved)
            return
        self._keep_on_screen = saved if saved.ng_threshold is not None else None
        self._pending_area = saved
        # the workspace's record goes back to the model's area too
        self.drawn = {kind: InspectedArea.from_mask(mask) for kind, mask in (("roi", saved.roi),
                                                                             ("ignore", saved.ignore))
                      if mask is not None}
        self._record_area()
        self.refresh(force=True)

    def _show_area(self) -> None:
        parts = []
        for name, mask in (("region of interest", self.roi), ("ignore region", self.ignore)):
            if mask is not None:
                parts.append(f"{name}: {100 * mask.mean():.1f}% of {mask.shape[1]}x{mask.shape[0]} px")
        self.area_label.setText("; ".join(parts).capitalize() + "." if parts else "Whole image inspected.")

    def sample_image_path(self) -> Path | None:
        """A test image to paint the inspected area on: a good one if any."""
        if self.data is None or not self.data.evaluation.records:
            return None
        records = self.data.evaluation.records
        return next((r.path for r in records if r.is_good), records[0].path)

    def _area_setting(self) -> str | None:
        entry = self.session.dataset_entry
        return None if entry is None else f"threshold.area_edited.{entry.id}"

    def _workspace_area(self) -> InspectionPolicy | None:
        """The inspected area recorded in the workspace for this dataset (None: never edited
        here, so the model's saved area is shown). Fills :attr:`drawn` with the areas as drawn."""
        self.drawn = {}
        workspace, key = self.session.workspace, self._area_setting()
        if workspace is None or key is None or not workspace.get_setting(key, False):
            return None
        try:
            self.drawn = workspace.inspected_areas(self.session.dataset_entry.id)
            return InspectionPolicy(roi=self.drawn["roi"].mask() if "roi" in self.drawn else None,
                                    ignore=self.drawn["ignore"].mask() if "ignore" in self.drawn else None)
        except ValueError as exc:  # a damaged record: say so, show the model's area
            self.drawn = {}
            self._set_status(f"The inspected area stored in the workspace cannot be used: {exc}")
            return None

    def _record_area(self) -> None:
        """Write the areas as drawn into the workspace (per dataset), so reopening it restores them."""
        workspace, key, entry = self.session.workspace, self._area_setting(), self.session.dataset_entry
        if workspace is None or key is None:
            return
        try:
            for kind in KINDS:
                workspace.set_inspected_area(entry.id, kind, self.drawn.get(kind))
            workspace.set_setting(key, True)
        except ValueError as exc:
            errors.show_error(self, "Could not record the inspected area", str(exc))

    def edit_area(self, kind: str) -> bool:
        """Paint the ignore region or the region of interest over a test image (modal dialog)."""
        from workbench.core.data import read_image
        from workbench.gui.widgets.area_editor import AreaEditorDialog

        path = self.sample_image_path()
        if path is None:
            return False
        image = read_image(path)
        current = self.ignore if kind == "ignore" else self.roi
        drawn = self.drawn.get(kind)
        if drawn is not None and current is not None and drawn.shape == current.shape \
                and np.array_equal(drawn.mask(), current):
            current = drawn  # edit the polygons as polygons
        if current is not None and current.shape != image.shape[:2]:
            current = None
        dialog = AreaEditorDialog(image, current, kind, self)
        if not dialog.exec():
            return False
        area = dialog.area()
        mask = area.mask()
        if kind == "ignore":
            self.set_area(self.roi, mask if mask.any() else None, drawn={"ignore": area})
        else:
            self.set_area(mask if mask.any() else None, self.ignore, drawn={"roi": area})
        return True

    def set_area(self, roi: np.ndarray | None, ignore: np.ndarray | None,
                 drawn: dict[str, InspectedArea] | None = None) -> Worker | None:
        """Use these masks (image coordinates): scores and pixel metrics are recomputed in the
        background, the thresholds on screen are kept; nothing is saved into the model until
        Save. The area is recorded in the workspace at once (``drawn``: how it was drawn,
        polygons included; otherwise kept as pixels)."""
        if self.data is None:
            return None
        try:
            area = (self.data.saved_policy or InspectionPolicy()).replace(roi=roi, ignore=ignore)
        except ValueError as exc:
            errors.show_error(self, "Cannot use this area", str(exc))
            return None
        drawn = dict(drawn or {})
        for kind, mask in (("roi", roi), ("ignore", ignore)):
            if mask is None:
                drawn.pop(kind, None)
                continue
            if kind not in drawn:
                old = self.drawn.get(kind)
                keep = old is not None and old.shape == mask.shape and np.array_equal(old.mask(), mask)
                drawn[kind] = old if keep else InspectedArea.from_mask(mask)
        self.drawn = drawn
        self._record_area()
        self._keep_on_screen = self.policy()
        self._pending_area = area
        return self.refresh(force=True)

    # ------------------------------------------------------------------ pixel threshold
    def current_pixel_preset(self) -> str:
        return next(k for k, b in self.pixel_buttons.items() if b.isChecked())

    def select_pixel_preset(self, preset: str, value: float | None = None) -> float | None:
        if value is not None:
            self.pixel_spin.blockSignals(True)
            self.pixel_spin.setValue(value)
            self.pixel_spin.blockSignals(False)
        self._check(self.pixel_buttons[preset])
        return self.apply_pixel_preset()

    def apply_pixel_preset(self, emit: bool = True) -> float | None:
        preset = self.current_pixel_preset()
        if preset == "manual":
            value: float | None = self.pixel_spin.value()
        elif preset == "none" or self.data is None:
            value = None
        else:
            value = self.data.pixel_thresholds.get(preset)
        self._set_pixel_value(value, emit)
        return value

    def _on_pixel_spin_changed(self, value: float) -> None:
        if self.data is None:
            return
        self._check(self.pixel_buttons["manual"])
        self._set_pixel_value(float(value), True)

    def _set_pixel_value(self, value: float | None, emit: bool) -> None:
        self.pixel_threshold = value
        self.pixel_spin.blockSignals(True)
        if value is not None:
            self.pixel_spin.setValue(value)
        self.pixel_spin.blockSignals(False)
        self.pixel_spin.setEnabled(self.data is not None and self.current_pixel_preset() != "none")
        self.pro_plot.set_pixel_threshold(value)
        if emit:
            self._emit_threshold()

    # ------------------------------------------------------------------ calibrations
    def _fill_calibrations(self, select: str | None = None) -> None:
        assert self.data is not None
        self.calib_combo.clear()
        for name in sorted(self.data.calibrations):
            cal = self.data.calibrations[name]
            mark = ACTIVE_MARK if name == self.data.active_calibration else ""
            self.calib_combo.addItem(f"{name}{mark}", name)
            self.calib_combo.setItemData(self.calib_combo.count() - 1,
                                         f"{cal.get('preset')} · image {cal.get('image_threshold'):.6g} · by "
                                         f"{cal.get('created_by')} on {cal.get('created_at')}",
                                         Qt.ItemDataRole.ToolTipRole)
        has = self.calib_combo.count() > 0
        if not has:
            self.calib_combo.addItem("(no calibration saved yet)", None)
        self.calib_combo.setEnabled(has)
        self.load_button.setEnabled(has)
        wanted = select or self.data.active_calibration
        if wanted is not None and self.calib_combo.findData(wanted) >= 0:
            self.calib_combo.setCurrentIndex(self.calib_combo.findData(wanted))

    def calibration_names(self) -> list[str]:
        return [n for n in (self.calib_combo.itemData(i) for i in range(self.calib_combo.count())) if n]

    def load_calibration(self, name: str | None = None) -> bool:
        """Set every control from the stored calibration ``name`` (default: the combo's)."""
        if self.data is None:
            return False
        name = name or self.calib_combo.currentData()
        cal = self.data.calibrations.get(name) if name else None
        if cal is None:
            return False
        kind = cal.get("normalization", "raw")
        if kind != "raw" and not self.data.image_stats:
            kind = "raw"
        self._set_normalization_silently(kind)
        self._apply_normalization(cal["image_threshold"])
        preset, target = cal.get("preset", "manual"), cal.get("target")
        if preset not in self.preset_buttons:
            preset = "manual"
        for key, spin in (("false_alarm", self.far_spin), ("recall", self.recall_spin)):
            if preset == key and target is not None:
                spin.blockSignals(True)
                spin.setValue(100.0 * float(target))
                spin.blockSignals(False)
        self._check(self.preset_buttons[preset])
        self._update_warning()
        self.min_area_spin.blockSignals(True)
        self.min_area_spin.setValue(int(cal.get("min_defect_area", 0)))
        self.min_area_spin.blockSignals(False)
        pixel = cal.get("pixel_threshold")
        pixel_preset = "none" if pixel is None else next(
            (k for k in ("f1", "good_max") if self.data.pixel_thresholds.get(k) == pixel), "manual")
        if pixel is not None:
            self.pixel_spin.blockSignals(True)
            self.pixel_spin.setValue(float(pixel))
            self.pixel_spin.blockSignals(False)
        self._check(self.pixel_buttons[pixel_preset])
        self._set_pixel_value(None if pixel is None else float(pixel), emit=False)
        self.name_edit.setText(name)
        ok = cal.get("ok_threshold")
        self.ok_threshold = None if ok is None else float(ok)
        self.set_threshold(float(cal["image_threshold"]), "load")
        self.saved_label.setText(f"Loaded '{name}' ({cal.get('created_at', '')}).")
        return True

    def build_calibration(self, name: str) -> Calibration:
        """A core :class:`Calibration` of the current settings (what Save writes)."""
        assert self.data is not None and self.threshold is not None
        preset = self.current_preset()
        target = self.preset_target(preset)
        data = {"dataset": self.data.dataset_name, "root": self.data.dataset_root, "split": "test"}
        kwargs = dict(name=name, pixel_preset="none", min_defect_area=self.min_area_spin.value(),
                      normalization=self.normalization, image_stats=self.data.image_stats, data=data)
        cal = calibrate(self.data.evaluation, preset, target, **kwargs)
        if cal.image_threshold != self.threshold:  # defensive: the preset and the shown value must agree
            cal = calibrate(self.data.evaluation, "manual", self.threshold, **kwargs)
        # The pixel value is the one shown: a core pixel preset's value computed in the worker
        # (calibrate(..., pixel_preset=...)), a manual value, or None.
        ok = self.ok_threshold if self.ok_threshold is not None and self.ok_threshold <= self.threshold else None
        return dataclasses.replace(cal, pixel_threshold=self.pixel_threshold, ok_threshold=ok,
                                   masks={"roi": self.roi is not None, "ignore": self.ignore is not None})

    def _show_recheck(self) -> None:
        """Say so when the model changed (an incremental update) since its thresholds were chosen."""
        from workbench.core.calibration.policy import read_package_metadata
        from workbench.core.model_versions import recheck_message

        text = None
        if self.data is not None and self.data.model_dir is not None:
            try:
                text = recheck_message(read_package_metadata(self.data.model_dir))
            except ValueError:
                text = None
        self.recheck_warning.setText(f"Re-check the thresholds: {text}" if text else "")
        self.recheck_warning.setVisible(bool(text))

    def save_calibration(self, name: str | None = None) -> Calibration | None:
        """Write the current thresholds into the model package as the active calibration."""
        if self.data is None or self.threshold is None or self.data.model_dir is None:
            errors.show_error(self, "Nothing to save", "Wait until the model's evaluation is shown.")
            return None
        name = (name if name is not None else self.name_edit.text()).strip() or "default"
        replacing = name in self.data.calibrations
        try:
            cal = self.build_calibration(name)
            save_calibration(self.data.model_dir, cal, activate=True, policy=self.policy())
            self.data.calibrations = load_calibrations(self.data.model_dir)
            self.data.saved_policy = load_policy(self.data.model_dir)
        except (ValueError, OSError) as exc:
            errors.show_error(self, "Could not save the calibration", str(exc))
            return None
        self.data.active_calibration = name
        self._show_recheck()
        self.name_edit.setText(name)
        self._fill_calibrations(select=name)
        self.saved_label.setText(f"{'Replaced' if replacing else 'Saved'} '{name}' in the model package "
                                 f"as the active calibration (image {cal.image_threshold:.6g}).")
        self.calibrationSaved.emit(name)
        self._emit_threshold()  # now saved: the Review step drops its 'unsaved' marker
        return cal

    # ------------------------------------------------------------------ helpers
    def _set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    @staticmethod
    def _compact(combo: QComboBox) -> None:
        """Let a combo box be narrower than its longest item (the popup still shows it whole)."""
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(12)

    @staticmethod
    def _check(button: QRadioButton) -> None:
        """Check a radio button without triggering the 'clicked' handlers."""
        group = button.group()
        if group is not None:
            group.blockSignals(True)
        button.setChecked(True)
        if group is not None:
            group.blockSignals(False)

