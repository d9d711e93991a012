"""Step 4 - Review: go through the images with the model's score, decision and anomaly map,
give each one a verdict (OK / NG + defect class + note) and draw or correct its mask.

What is reviewed is the workspace's ground truth from then on: label rows in the workspace
database, masks as PNGs under ``labels/<dataset_id>/`` (written atomically), both undoable.
:attr:`ReviewPanel.labelsChanged` tells other panels (threshold, export) to refresh; core
:func:`workbench.core.labels.reviewed_records` gives them the reviewed records.

For reconstruction methods (autoencoder, GANomaly, DRAEM) the viewer can also show input |
reconstruction | residual side by side: the reconstruction of the selected image is computed
in a background worker (the model is loaded once), cached per image and shown when it
arrives; results for an image the user has left are cached but not shown.

Keys (when the panel has the focus; typing in the note field types text):
1 OK · 2 NG · 3-9 NG with defect class 1-7 · N / → next · P / ← previous · O heat map on/off
· S side by side · R reconstruction view on/off · F fit · Z 1:1 · V view · B brush · E eraser · L polygon (double-click
closes) · G fill blob from heat map · H fill whole heat-map region · [ ] brush size
· Ctrl+Z / Ctrl+Shift+Z undo / redo.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence, QShortcut, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView, QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFrame, QGridLayout, QGroupBox,
    QHBoxLayout, QHeaderView, QInputDialog, QLabel, QLineEdit, QPushButton, QSizePolicy, QSlider, QSpinBox,
    QScrollArea, QSplitter, QStackedWidget, QTableView, QToolButton, QVBoxLayout, QWidget,
)

from workbench.core.data import Dataset
from workbench.core.labels import (
    LabelError, dataset_labels_dir, delete_mask, label_key, load_classes, mask_file, save_classes, save_mask,
)
from workbench.core.labels.exchange import COCO_MASK_ENCODING
from workbench.core.calibration.policy import InspectionPolicy, PolicyError
from workbench.core.evaluation import record_shape
from workbench.core.workspace import DatasetEntry, WorkspaceError
from workbench.gui.qtmodels.review_table import (
    ANY, COL_IMAGE, COL_MARGIN, COL_MODEL, COL_REVIEW, COL_SCORE, COL_SPLIT, REVIEWED, UNREVIEWED, VERDICT_NG,
    VERDICT_OK, ReviewFilterProxy, ReviewItem, ReviewTableModel,
)
from workbench.gui.qtmodels.roles import ObjectRole
from workbench.gui.session import Session
from workbench.gui.widgets import errors
from workbench.gui.widgets.folder_results import FolderResultsView
from workbench.gui.widgets.mask_editor import BRUSH, ERASER, FILL, POLYGON, VIEW, MaskEditor
from workbench.gui.widgets.review_commands import LabelCommand, MaskCommand, clean_label
from workbench.gui.widgets.review_frames import (
    COLORMAPS, FrameCache, FrameLoader, MapSettings, ReviewFrame, current_mask, render_frame,
)
from workbench.gui.imaging import LruCache
from workbench.gui.widgets.evidence_panel import EvidenceBox, EvidenceController
from workbench.gui.widgets.review_jobs import (
    Predictions, Reconstruction, export_labels, import_labels, load_predictions, reconstruct_image,
    reconstruction_support, reviewed_metrics,
)
from workbench.gui.widgets.review_viewer import (
    OVERLAY_MODE, RECONSTRUCTION_MODE, REGION_COLOR, TRUTH_COLOR, ReviewViewer,
)
from workbench.gui.workers import Worker

log = logging.getLogger(__name__)

COLORMAP_KEY = "gui.review.colormap"
OPACITY_KEY = "gui.review.opacity"
CLASS_KEYS = "3456789"  # class shortcuts: NG with the 1st..7th defect class
PREFETCH_AHEAD, PREFETCH_BEHIND = 2, 1
PREFETCH_DELAY_MS = 60  # let the shown frame paint first: the pool thread competes for the CPU
RECON_CACHE = 32  # reconstructions kept (per image and render generation)
RECON_BUTTON_TIP = ("Input | reconstruction | residual side by side (R): what the model redraws, "
                    "and where it differs (the anomaly map, same colour scale as the overlay)")


class ReviewPanel(QWidget):
    """Image list + viewer + labelling tools for the current dataset and active model."""

    labelsChanged = Signal(int)  # dataset id whose reviewed verdicts, classes or masks changed
    # (dataset id, label key, "verdict" or "mask"): one image's review changed; emitted just
    # before labelsChanged, so listeners can update incrementally
    labelEdited = Signal(int, str, str)
    frameShown = Signal(str)  # label key of the image now on screen (with its overlay)
    savePolicyRequested = Signal()  # the user pressed Save on the unsaved-policy bar
    revertPolicyRequested = Signal()  # ... or Revert
    predictionsShown = Signal()  # a model's predictions are now shown (at its saved policy)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(200)
        self.editor = MaskEditor(self)
        self.model = ReviewTableModel(self)
        self.proxy = ReviewFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.loader = FrameLoader(threads=1, max_pending=6, parent=self)
        self.loader.loaded.connect(self._on_frame_loaded)
        self.loader.failed.connect(self._on_frame_failed)
        self.cache = FrameCache(24)
        self.dataset_id: int | None = None
        self.dataset: Dataset | None = None
        self.mask_dir: Path | None = None
        self.classes: list[str] = []
        self.predictions: Predictions | None = None
        self.map_settings: MapSettings | None = None
        self.image_threshold: float | None = None
        self.saved_policy: InspectionPolicy | None = None  # the model package's policy
        self.policy: InspectionPolicy | None = None  # the policy shown: the Threshold step's, saved or not
        self.policy_unsaved = False
        self.pred_worker: Worker | None = None
        self.job: Worker | None = None  # export / import / re-evaluation
        self.recon_worker: Worker | None = None  # one reconstruction at a time, latest wanted next
        self.recon_cache = LruCache(RECON_CACHE)  # (key, generation) -> Reconstruction
        self.recon_errors: dict[tuple[str, int], str] = {}
        self.recon_supported = False
        self._recon_dir: Path | None = None  # model folder the reconstructions are for
        self._recon_model = None  # that model, loaded by the first reconstruction job
        self._recon_wanted: ReviewItem | None = None
        self.current_key: str | None = None
        self.frame: ReviewFrame | None = None
        self._generation = 0  # bumps whenever what frames show changes (model, colormap)
        self._filling_controls = False
        self._prefetch_timer = QTimer(self)
        self._prefetch_timer.setSingleShot(True)
        self._prefetch_timer.setInterval(PREFETCH_DELAY_MS)
        self._prefetch_timer.timeout.connect(self._prefetch)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        split.addWidget(self._build_list())
        split.addWidget(self._build_viewer())
        split.addWidget(self._build_tools())
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 0)
        split.setSizes([470, 630, 300])
        self.splitter = split
        self._sized = False
        # a folder inference run is shown in place of the dataset's review (Back returns)
        self.folder_view = FolderResultsView()
        self.folder_view.closed.connect(self.close_folder_run)
        self.pages = QStackedWidget()
        self.pages.addWidget(split)
        self.pages.addWidget(self.folder_view)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages)
        self._build_shortcuts()

        self.editor.editFinished.connect(self._on_mask_edited)
        self.undo_stack.canUndoChanged.connect(self.undo_button.setEnabled)
        self.undo_stack.canRedoChanged.connect(self.redo_button.setEnabled)
        session.workspaceChanged.connect(self._on_workspace_changed)
        session.datasetChanged.connect(self._on_dataset_changed)
        session.activeModelChanged.connect(self._on_active_model_changed)
        session.modelsChanged.connect(self._on_models_changed)
        self.evidence = EvidenceController(self, self.evidence_box)
        self._on_dataset_changed(session.dataset_entry, session.dataset)

    # ------------------------------------------------------------------ building
    def _build_list(self) -> QWidget:
        self.split_combo = QComboBox()
        self.verdict_combo = QComboBox()
        for text, value in (("All", ANY), ("Not reviewed", UNREVIEWED), ("Reviewed", REVIEWED),
                            ("OK", VERDICT_OK), ("NG", VERDICT_NG)):
            self.verdict_combo.addItem(text, value)
        self.class_combo = QComboBox()
        self.score_min = QDoubleSpinBox()
        self.score_min.setDecimals(3)
        self.score_min.setRange(-1e9, 1e9)
        self.score_min.setSpecialValueText("any")
        self.score_min.setMinimum(-1e9)
        self.score_min.setValue(-1e9)
        self.score_min.setToolTip("Show only images scoring at least this much (lowest value: any)")
        self.disagree_check = QCheckBox("Disagrees with model")
        self.disagree_check.setToolTip("Only images where the model's decision differs from the label")
        self.hard_button = QPushButton("Hard cases")
        self.hard_button.setCheckable(True)
        self.hard_button.setToolTip("Queue of images whose score is closest to the threshold, closest first")
        for combo in (self.split_combo, self.verdict_combo, self.class_combo):
            combo.currentIndexChanged.connect(self._apply_filter)
            # Sized by a few characters, not by the longest class name: the list must stay narrow.
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
        self.score_min.valueChanged.connect(self._apply_filter)
        self.disagree_check.toggled.connect(self._apply_filter)
        self.hard_button.toggled.connect(self._on_hard_cases)

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(QLabel("Split"), 0, 0)
        grid.addWidget(self.split_combo, 0, 1)
        grid.addWidget(QLabel("Review"), 0, 2)
        grid.addWidget(self.verdict_combo, 0, 3)
        grid.addWidget(QLabel("Class"), 1, 0)
        grid.addWidget(self.class_combo, 1, 1)
        grid.addWidget(QLabel("Score ≥"), 1, 2)
        grid.addWidget(self.score_min, 1, 3)
        grid.addWidget(self.disagree_check, 2, 0, 1, 2)
        grid.addWidget(self.hard_button, 2, 2, 1, 2)

        self.table = QTableView()
        self.table.setObjectName("reviewTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COL_IMAGE, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        for col, width in ((COL_SPLIT, 48), (COL_REVIEW, 96), (COL_SCORE, 62), (COL_MODEL, 58), (COL_MARGIN, 58)):
            self.table.setColumnWidth(col, width)
        self.table.setColumnHidden(2, True)  # the folder label is already in the image name
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row)
        self.count_label = QLabel("")
        self.count_label.setObjectName("hint")

        box = QGroupBox("Images")
        lay = QVBoxLayout(box)
        lay.addLayout(grid)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.count_label)
        return box

    def _build_viewer(self) -> QWidget:
        self.viewer = ReviewViewer(self.editor)
        self.fit_button = QToolButton()
        self.fit_button.setText("Fit")
        self.fit_button.setToolTip("Fit the image in the view (F)")
        self.fit_button.clicked.connect(self.viewer.fit)
        self.one_button = QToolButton()
        self.one_button.setText("1:1")
        self.one_button.setToolTip("One image pixel per screen pixel (Z); the wheel zooms, drag pans")
        self.one_button.clicked.connect(self.viewer.actual_size)
        self.overlay_check = QCheckBox("Heat map")
        self.overlay_check.setChecked(True)
        self.overlay_check.setToolTip("Show the anomaly map over the image (O), scaled per dataset")
        self.overlay_check.toggled.connect(lambda on: self.viewer.set_overlay(visible=on))
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(45)
        self.opacity_slider.setFixedWidth(90)
        self.opacity_slider.setToolTip("Heat-map opacity")
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        self.colormap_combo = QComboBox()
        for name in COLORMAPS:
            self.colormap_combo.addItem(name)
        self.colormap_combo.setToolTip("Colour map of the anomaly map")
        self.colormap_combo.currentTextChanged.connect(self._on_colormap)
        self.region_check = QCheckBox("Model region")
        self.region_check.setChecked(True)
        self.region_check.setToolTip("Outline where the map exceeds the model's pixel threshold")
        self.region_check.toggled.connect(lambda on: self.viewer.set_outlines(region=on))
        self.truth_check = QCheckBox("Mask")
        self.truth_check.setChecked(True)
        self.truth_check.setToolTip("Outline of the ground-truth mask (yours when you drew one)")
        self.truth_check.toggled.connect(lambda on: self.viewer.set_outlines(truth=on))
        self.side_check = QCheckBox("Side by side")
        self.side_check.setToolTip("Image | heat map | mask with synchronised zoom and pan (S)")
        self.side_check.toggled.connect(self.viewer.set_side_by_side)

        # Two short rows rather than one long one: the viewer must fit beside the list and the
        # tools on a 1366 px laptop screen.
        bar = QVBoxLayout()
        bar.setSpacing(2)
        for row_widgets in ((self.overlay_check, self.opacity_slider, self.colormap_combo, self.fit_button,
                             self.one_button), (self.region_check, self.truth_check, self.side_check)):
            row = QHBoxLayout()
            row.setSpacing(6)
            for w in row_widgets:
                row.addWidget(w)
            row.addStretch(1)
            bar.addLayout(row)
        self.overlay_mode_button = QToolButton()
        self.overlay_mode_button.setText("Overlay")
        self.overlay_mode_button.setToolTip("The image with the anomaly map and outlines")
        self.recon_mode_button = QToolButton()
        self.recon_mode_button.setText("Input · Reconstruction · Residual")
        self.recon_mode_button.setObjectName("reconstructionMode")
        self.view_mode_group = QButtonGroup(self)
        self.view_mode_group.setExclusive(True)
        for button, mode in ((self.overlay_mode_button, OVERLAY_MODE), (self.recon_mode_button, RECONSTRUCTION_MODE)):
            button.setCheckable(True)
            button.setAutoRaise(False)
            self.view_mode_group.addButton(button)
            button.clicked.connect(lambda _checked=False, m=mode: self.set_view_mode(m))
        self.overlay_mode_button.setChecked(True)
        self.recon_mode_button.setEnabled(False)
        mode_bar = QHBoxLayout()
        mode_bar.setSpacing(0)
        mode_label = QLabel("View ")
        mode_label.setObjectName("hint")
        mode_bar.addWidget(mode_label)
        mode_bar.addWidget(self.overlay_mode_button)
        mode_bar.addWidget(self.recon_mode_button)
        mode_bar.addStretch(1)
        self.info_label = QLabel("")
        self.info_label.setObjectName("imageInfo")
        self.info_label.setTextFormat(Qt.TextFormat.RichText)
        self.info_label.setWordWrap(True)
        self.legend = QLabel(
            f"<span style='color:{REGION_COLOR.name()}'>■</span> model region (map ≥ pixel threshold)<br>"
            f"<span style='color:{TRUTH_COLOR.name()}'>■</span> ground-truth / reviewed mask")
        self.legend.setObjectName("hint")
        box = QGroupBox("Viewer")
        lay = QVBoxLayout(box)
        lay.addLayout(mode_bar)
        lay.addLayout(bar)
        lay.addWidget(self._build_policy_bar())
        lay.addWidget(self.info_label)
        lay.addWidget(self.viewer, 1)
        lay.addWidget(self.legend)
        return box

    def _build_policy_bar(self) -> QWidget:
        """'Unsaved' marker with Save / Revert, shown while the Threshold step's policy differs
        from the one stored in the model (decisions here follow the on-screen policy)."""
        self.policy_bar = QFrame()
        self.policy_bar.setObjectName("unsavedPolicy")
        self.policy_bar.setStyleSheet("#unsavedPolicy { background: #fff4d6; border: 1px solid #e0b000; }")
        self.unsaved_label = QLabel("")
        self.unsaved_label.setObjectName("unsavedLabel")
        self.unsaved_label.setWordWrap(True)
        self.save_policy_button = QPushButton("Save")
        self.save_policy_button.setToolTip("Store this policy in the model package (as the Threshold step's Save)")
        self.save_policy_button.clicked.connect(self.savePolicyRequested.emit)
        self.revert_policy_button = QPushButton("Revert")
        self.revert_policy_button.setToolTip("Go back to the policy stored in the model package")
        self.revert_policy_button.clicked.connect(self.revertPolicyRequested.emit)
        row = QHBoxLayout(self.policy_bar)
        row.setContentsMargins(6, 2, 6, 2)
        row.addWidget(self.unsaved_label, 1)
        row.addWidget(self.save_policy_button)
        row.addWidget(self.revert_policy_button)
        self.policy_bar.setVisible(False)
        return self.policy_bar

    def set_screen_policy(self, policy: InspectionPolicy | None, unsaved: bool) -> None:
        """Decide with ``policy`` (the Threshold step's, possibly unsaved) without recomputing."""
        self.policy_unsaved = bool(unsaved and policy is not None)
        if policy is not None and self.predictions is not None:
            self._apply_policy(policy)
        self._update_policy_bar()

    def _update_policy_bar(self) -> None:
        show = self.policy_unsaved and self.policy is not None
        self.policy_bar.setVisible(show)
        if show:
            p = self.policy
            band = "" if p.ok_threshold is None else f", REVIEW from {p.ok_threshold:.4g}"
            self.unsaved_label.setText(
                f"<b>Unsaved policy</b> from the Threshold step: NG from {p.ng_threshold:.4g}{band}, "
                f"min. area {p.min_defect_area} px. Decisions here use it; the model still has the saved one.")

    def _apply_policy(self, policy: InspectionPolicy) -> None:
        """Scores (after ROI/ignore), decisions and outlines at ``policy``."""
        assert self.predictions is not None
        result = self.predictions.result
        same_area = self.policy is not None and policy.same_area(self.policy) and self.model.policy is not None
        self.policy = policy
        self.image_threshold = policy.ng_threshold
        scale = policy.map_scale(fallback_maps=result.maps)
        self.map_settings = MapSettings(scale, float(policy.outline_threshold if policy.outline_threshold is not None
                                                     else scale.threshold),
                                        COLORMAPS[self.colormap_combo.currentText()], policy.min_defect_area,
                                        policy if policy.ng_threshold is not None else None)
        if same_area and policy.ng_threshold is not None:
            self.model.set_policy(policy)  # same scores: only decisions change (no model reset)
        else:
            scores = result.scores
            if policy.has_masks:
                scores = [policy.image_score(s, m, record_shape(r))
                          for r, s, m in zip(result.records, result.scores, result.maps)]
            root = self.dataset.root if self.dataset else Path(".")
            keyed = {label_key(root, r.path): (i, float(s)) for i, (r, s) in enumerate(zip(result.records, scores))}
            self.model.set_scores(keyed, policy if policy.ng_threshold is not None else None)
        self._generation += 1
        self.cache.clear()
        self.loader.clear()
        item = self._current_item()
        if item is not None:
            self.current_key = None  # re-render the image on screen with the new outline
            self.show_item(item)
        self._update_all()

    def _build_tools(self) -> QWidget:
        # ---- verdict
        self.ok_button = QPushButton("OK  (1)")
        self.ok_button.setObjectName("verdictOk")
        self.ok_button.setCheckable(True)
        self.ok_button.clicked.connect(lambda: self.set_verdict("OK"))
        self.ng_button = QPushButton("NG  (2)")
        self.ng_button.setObjectName("verdictNg")
        self.ng_button.setCheckable(True)
        self.ng_button.clicked.connect(lambda: self.set_verdict("NG"))
        verdicts = QHBoxLayout()
        verdicts.addWidget(self.ok_button)
        verdicts.addWidget(self.ng_button)
        self.class_grid = QGridLayout()
        self.class_grid.setSpacing(4)
        self.class_buttons: list[QPushButton] = []
        self.classes_button = QPushButton("Edit classes…")
        self.classes_button.setToolTip("Defect classes of this dataset, one per line (keys 3-9 pick them)")
        self.classes_button.clicked.connect(self.edit_classes)
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("Note (Enter to save)")
        self.note_edit.editingFinished.connect(self._on_note_edited)
        self.advance_check = QCheckBox("Next image after OK / class key")
        self.clear_button = QPushButton("Clear label")
        self.clear_button.setToolTip("Forget the verdict, class and note of this image (its mask stays)")
        self.clear_button.clicked.connect(self.clear_label)
        nav = QHBoxLayout()
        self.prev_button = QPushButton("◀ Prev (P)")
        self.prev_button.clicked.connect(self.previous_image)
        self.next_button = QPushButton("Next (N) ▶")
        self.next_button.clicked.connect(self.next_image)
        nav.addWidget(self.prev_button)
        nav.addWidget(self.next_button)
        label_box = QGroupBox("Label")
        ll = QVBoxLayout(label_box)
        ll.addLayout(verdicts)
        ll.addLayout(self.class_grid)
        ll.addWidget(self.classes_button)
        ll.addWidget(self.note_edit)
        ll.addWidget(self.advance_check)
        ll.addWidget(self.clear_button)
        ll.addLayout(nav)

        # ---- mask tools
        self.tool_group = QButtonGroup(self)
        self.tool_group.setExclusive(True)
        self.tool_buttons: dict[str, QToolButton] = {}
        tools = QGridLayout()
        tools.setSpacing(4)
        for i, (tool, text, tip) in enumerate((
                (VIEW, "View (V)", "Pan with the left button"), (BRUSH, "Brush (B)", "Paint defect pixels"),
                (ERASER, "Eraser (E)", "Erase defect pixels"),
                (POLYGON, "Polygon (L)", "Click corners, double-click to fill, right-click cancels"),
                (FILL, "Fill blob (G)", "Click a hot spot: add the model's region under it"))):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.setCheckable(True)
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            button.clicked.connect(partial(self.editor.set_tool, tool))
            self.tool_group.addButton(button)
            self.tool_buttons[tool] = button
            tools.addWidget(button, i // 2, i % 2)
        self.tool_buttons[VIEW].setChecked(True)
        self.editor.toolChanged.connect(lambda t: self.tool_buttons[t].setChecked(True))
        self.size_spin = QSpinBox()
        self.size_spin.setRange(1, 400)
        self.size_spin.setValue(int(self.editor.radius * 2))
        self.size_spin.setSuffix(" px")
        self.size_spin.setToolTip("Brush diameter in image pixels ([ and ] change it)")
        self.size_spin.valueChanged.connect(lambda v: self.editor.set_radius(v / 2))
        self.editor.radiusChanged.connect(lambda r: self.size_spin.setValue(max(1, round(r * 2))))
        size_row = QHBoxLayout()
        size_row.addWidget(QLabel("Brush size"))
        size_row.addWidget(self.size_spin, 1)
        self.fill_heat_button = QPushButton("Fill from heat map (H)")
        self.fill_heat_button.setToolTip("Add the model's whole thresholded region to the mask")
        self.fill_heat_button.clicked.connect(self.editor.fill_from_heatmap)
        self.clear_mask_button = QPushButton("Clear mask")
        self.clear_mask_button.setToolTip("Erase the whole mask (saved as 'no defect pixels')")
        self.clear_mask_button.clicked.connect(self.editor.clear)
        self.revert_mask_button = QPushButton("Revert mask")
        self.revert_mask_button.setToolTip("Delete your mask of this image and show the dataset's own again")
        self.revert_mask_button.clicked.connect(self.revert_mask)
        self.mask_state = QLabel("")
        self.mask_state.setObjectName("hint")
        self.mask_state.setWordWrap(True)
        mask_box = QGroupBox("Mask")
        ml = QVBoxLayout(mask_box)
        ml.addLayout(tools)
        ml.addLayout(size_row)
        ml.addWidget(self.fill_heat_button)
        row = QHBoxLayout()
        row.addWidget(self.clear_mask_button)
        row.addWidget(self.revert_mask_button)
        ml.addLayout(row)
        ml.addWidget(self.mask_state)

        # ---- history, counts, exchange
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Undo the last label or mask edit (Ctrl+Z)")
        self.undo_button.clicked.connect(self.undo_stack.undo)
        self.undo_button.setEnabled(False)
        self.redo_button = QPushButton("Redo")
        self.redo_button.setToolTip("Redo (Ctrl+Shift+Z)")
        self.redo_button.clicked.connect(self.undo_stack.redo)
        self.redo_button.setEnabled(False)
        self.counts_label = QLabel("")
        self.counts_label.setObjectName("reviewCounts")
        self.counts_label.setWordWrap(True)
        self.metrics_button = QPushButton("Metrics with reviewed labels")
        self.metrics_button.setToolTip("Recompute the active model's metrics on your reviewed ground truth")
        self.metrics_button.clicked.connect(lambda: self.evaluate_reviewed())
        self.metrics_label = QLabel("")
        self.metrics_label.setObjectName("hint")
        self.metrics_label.setWordWrap(True)
        self.export_mvtec_button = QPushButton("MVTec…")
        self.export_mvtec_button.setToolTip("Copy images + reviewed masks into an MVTec AD folder")
        self.export_mvtec_button.clicked.connect(lambda: self.export_labels("mvtec"))
        self.export_coco_button = QPushButton("COCO…")
        self.export_coco_button.setToolTip(f"Reviewed labels as COCO JSON (masks as {COCO_MASK_ENCODING})")
        self.export_coco_button.clicked.connect(lambda: self.export_labels("coco"))
        self.import_button = QPushButton("Import labels…")
        self.import_button.setToolTip("Read verdicts and masks from an MVTec folder or a COCO JSON file")
        self.import_button.clicked.connect(lambda: self.import_labels())
        review_box = QGroupBox("Review")
        rl = QVBoxLayout(review_box)
        hist = QHBoxLayout()
        hist.addWidget(self.undo_button)
        hist.addWidget(self.redo_button)
        rl.addLayout(hist)
        rl.addWidget(self.counts_label)
        rl.addWidget(self.metrics_button)
        rl.addWidget(self.metrics_label)
        ex = QGridLayout()
        ex.addWidget(QLabel("Export"), 0, 0)
        ex.addWidget(self.export_mvtec_button, 0, 1)
        ex.addWidget(self.export_coco_button, 0, 2)
        ex.addWidget(self.import_button, 1, 0, 1, 3)
        rl.addLayout(ex)

        column = QWidget()
        column.setObjectName("reviewTools")
        cl = QVBoxLayout(column)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(label_box)
        cl.addWidget(mask_box)
        cl.addWidget(review_box)
        self.evidence_box = EvidenceBox()
        cl.addWidget(self.evidence_box)
        cl.addStretch(1)
        # The column is taller than a laptop screen: it scrolls vertically (never squashed).
        self.tools_scroll = scroll = QScrollArea()
        scroll.setObjectName("reviewToolsScroll")
        scroll.setWidget(column)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(column.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 2)
        scroll.setMaximumWidth(380)
        return scroll

    def _build_shortcuts(self) -> None:
        def key(seq, slot, what: str) -> QShortcut:
            sc = QShortcut(QKeySequence(seq), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.setWhatsThis(what)  # Help > Keyboard shortcuts lists it from here
            sc.activated.connect(slot)
            return sc

        self.shortcuts = [
            key("1", lambda: self.set_verdict("OK", advance=True), "Verdict OK, then the next image"),
            key("2", lambda: self.set_verdict("NG"), "Verdict NG"),
            key("N", self.next_image, "Next image"), key(Qt.Key.Key_Right, self.next_image, "Next image"),
            key("P", self.previous_image, "Previous image"),
            key(Qt.Key.Key_Left, self.previous_image, "Previous image"),
            key("O", self.overlay_check.toggle, "Heat-map overlay on / off"),
            key("S", self.side_check.toggle, "Side-by-side view on / off"),
            key("R", self.toggle_reconstruction_view, "Reconstruction view on / off"),
            key("F", self.viewer.fit, "Fit the image to the view"), key("Z", self.viewer.actual_size, "Actual size"),
            key("V", partial(self.editor.set_tool, VIEW), "Mask tool: view (pan and zoom)"),
            key("B", partial(self.editor.set_tool, BRUSH), "Mask tool: brush"),
            key("E", partial(self.editor.set_tool, ERASER), "Mask tool: eraser"),
            key("L", partial(self.editor.set_tool, POLYGON), "Mask tool: polygon"),
            key("G", partial(self.editor.set_tool, FILL), "Mask tool: fill"),
            key("H", self.editor.fill_from_heatmap, "Mask from the heat map"),
            key("[", lambda: self.editor.set_radius(self.editor.radius / 1.25), "Smaller brush"),
            key("]", lambda: self.editor.set_radius(self.editor.radius * 1.25), "Larger brush"),
            key(Qt.Key.Key_Return, self.editor.close_polygon, "Close the polygon"),
            key(QKeySequence.StandardKey.Undo, self.undo_stack.undo, "Undo a label or mask edit"),
            key(QKeySequence.StandardKey.Redo, self.undo_stack.redo, "Redo"),
            key("Ctrl+Shift+Z", self.undo_stack.redo, "Redo"),
        ]
        for i, char in enumerate(CLASS_KEYS):
            self.shortcuts.append(key(char, partial(self.set_class_by_number, i), f"Verdict NG with defect class {i + 1}"))

    # ------------------------------------------------------------------ folder runs
    def show_folder_run(self, summary) -> None:
        """Show a finished folder inference run (per-image decisions, overlays, scores.csv)."""
        self.folder_view.set_summary(summary)
        self.pages.setCurrentWidget(self.folder_view)
        for shortcut in self.shortcuts:  # the labelling keys act on the dataset's images only
            shortcut.setEnabled(False)
        self.folder_view.table.setFocus(Qt.FocusReason.OtherFocusReason)

    def close_folder_run(self) -> None:
        self.pages.setCurrentIndex(0)
        for shortcut in self.shortcuts:
            shortcut.setEnabled(True)
        self.table.setFocus(Qt.FocusReason.OtherFocusReason)

    @property
    def showing_folder_run(self) -> bool:
        return self.pages.currentWidget() is self.folder_view

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Drop queued frames and wait for the one being prepared (call before closing)."""
        self._prefetch_timer.stop()
        self.loader.clear()
        self._recon_wanted = None
        if self.recon_worker is not None and self.recon_worker.running:
            self.recon_worker.cancel()
        return self.loader.wait(timeout_ms)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        if not self._sized:  # the first real width: list a third, tools a fifth, viewer the rest
            self._sized = True
            total = max(self.splitter.width(), 900)
            right = self.tools_scroll.minimumWidth()
            left = max(self.splitter.widget(0).minimumSizeHint().width(), int(total * 0.3))
            self.splitter.setSizes([left, total - left - right, right])
        # Keys (N/P, 1/2, 3-9) work at once: the step's shortcuts live on this panel, so the
        # focus must be inside it, not on the step list that was just clicked.
        (self.folder_view.table if self.showing_folder_run else self.table).setFocus(Qt.FocusReason.OtherFocusReason)

    # ------------------------------------------------------------------ session
    @Slot(object)
    def _on_workspace_changed(self, _workspace) -> None:
        self._on_dataset_changed(None, None)

    @Slot(object, object)
    def _on_dataset_changed(self, entry: DatasetEntry | None, dataset: Dataset | None) -> None:
        self.loader.clear()
        self.cache.clear()
        self.undo_stack.clear()
        self.predictions, self.map_settings, self.image_threshold = None, None, None
        self.current_key, self.frame = None, None
        self._generation += 1
        self._update_recon_control()
        workspace = self.session.workspace
        if entry is None or dataset is None or workspace is None:
            self.dataset_id, self.dataset, self.mask_dir, self.classes = None, None, None, []
            self.model.set_items([], {}, set())
            self._fill_filters()
            self._rebuild_class_buttons()
            self.viewer.set_frame(None, "Open a dataset in step 1 to review its images.")
            self.editor.set_image(None, None)
            self._update_all()
            return
        self.dataset_id, self.dataset = entry.id, dataset
        self.mask_dir = dataset_labels_dir(workspace.labels_dir, entry.id)
        self._restore_view_settings()
        items = [ReviewItem(r, label_key(dataset.root, r.path)) for r in dataset.records]
        masks = {it.key for it in items if mask_file(self.mask_dir, it.key).is_file()}
        self.model.set_items(items, workspace.labels(entry.id), masks)
        self.classes = load_classes(workspace, entry.id, dataset.defect_types)
        self._rebuild_class_buttons()
        self._fill_filters()
        self._sort_default()
        self.select_row(0)
        self._on_active_model_changed(self.session.active_model)
        self._update_all()

    @Slot(object)
    def _on_active_model_changed(self, model) -> Worker | None:
        if self.pred_worker is not None and self.pred_worker.running:
            self.pred_worker.cancel()
        self.pred_worker = None
        if model is None or self.dataset is None or model.dataset_id != self.dataset_id or not model.exists:
            if self.predictions is not None:
                self.set_predictions(None)
            return None
        if self.predictions is not None and self.predictions.model_dir == model.path:
            return None
        worker = Worker(load_predictions, model.path, self.dataset)
        dataset_id = self.dataset_id
        worker.finished.connect(lambda preds, d=dataset_id: self._on_predictions(preds, d))
        self.pred_worker = self.session.jobs.start(worker, f"Load predictions of {model.name}")
        self.info_label.setText("Loading the model's scores and maps…")
        return worker

    def _on_predictions(self, preds: Predictions, dataset_id: int | None) -> None:
        if dataset_id != self.dataset_id:
            return  # the user switched dataset meanwhile
        model = self.session.active_model
        if model is None or model.path != preds.model_dir:
            return
        self.set_predictions(preds)

    @Slot()
    def _on_models_changed(self) -> None:
        """A model was re-evaluated or re-calibrated: pick up new thresholds (no recompute)."""
        model = self.session.active_model
        if self.predictions is None or model is None or model.path != self.predictions.model_dir:
            return
        try:
            from workbench.core.methods.package import read_metadata

            meta = read_metadata(model.path)
        except Exception:  # the model folder vanished: keep what is shown
            return
        if meta.get("thresholds") != self.predictions.metadata.get("thresholds"):
            self.set_predictions(Predictions(self.predictions.model_dir, self.predictions.result, meta))
        elif self.policy_unsaved and self.policy is not None \
                and self.saved_policy is not None and self.policy.fingerprint() == self.saved_policy.fingerprint():
            self.set_screen_policy(self.saved_policy, unsaved=False)

    def set_predictions(self, preds: Predictions | None) -> None:
        """Show ``preds`` (scores, maps, thresholds of the active model), or none."""
        self.predictions = preds
        self._generation += 1
        self.cache.clear()
        self.loader.clear()
        if preds is None:
            self.map_settings, self.image_threshold = None, None
            self.saved_policy = self.policy = None
            self.policy_unsaved = False
            self.model.set_scores({}, None)
        else:
            meta, result = preds.metadata, preds.result
            try:
                policy = InspectionPolicy.from_metadata(meta, preds.model_dir)
            except PolicyError as exc:  # e.g. a mask file deleted by hand: decide without masks, say so
                log.warning("%s", exc)
                policy = InspectionPolicy.from_metadata(meta, masks=False)
            if policy.ng_threshold is None and result.f1_threshold is not None:
                policy = policy.replace(ng_threshold=result.f1_threshold, source="F1-optimal (no threshold saved)")
            self.saved_policy = policy
            self.policy = None  # new predictions: their scores are set, not only the decisions
            self.policy_unsaved = False
            self._generation += 1
            self._apply_policy(policy)
            self._update_policy_bar()
        self._update_recon_control()
        self._fill_filters()
        self._sort_default()
        self.select_row(0)
        self._update_all()
        if preds is not None:
            self.predictionsShown.emit()

    # ------------------------------------------------------------------ filters and sorting
    def _fill_filters(self) -> None:
        self._filling_controls = True
        try:
            keep_split = self.split_combo.currentData()
            self.split_combo.clear()
            self.split_combo.addItem("All", None)
            records = self.dataset.records if self.dataset else []
            for split in ("train", "val", "test"):
                if any(r.split == split for r in records):
                    self.split_combo.addItem(split, split)
            default = keep_split if keep_split is not None else ("test" if any(r.split == "test" for r in records) else None)
            self.split_combo.setCurrentIndex(max(0, self.split_combo.findData(default)))
            keep_class = self.class_combo.currentData()
            self.class_combo.clear()
            self.class_combo.addItem("All", None)
            self.class_combo.addItem("good", "good")
            names = list(self.classes)
            for r in records:
                if r.is_anomalous and r.label not in names:
                    names.append(r.label)
            for name in names:
                self.class_combo.addItem(name, name)
            self.class_combo.setCurrentIndex(max(0, self.class_combo.findData(keep_class)))
        finally:
            self._filling_controls = False
        self._apply_filter()

    def _apply_filter(self) -> None:
        if self._filling_controls:
            return
        score_min = self.score_min.value()
        self.table.setColumnHidden(COL_SPLIT, self.split_combo.currentData() is not None)  # all the same
        self.table.setColumnHidden(COL_MARGIN, not self.hard_button.isChecked())  # the queue's sort key
        self.proxy.set_filter(split=self.split_combo.currentData(), verdict=self.verdict_combo.currentData(),
                              label=self.class_combo.currentData(), disagree_only=self.disagree_check.isChecked(),
                              scored_only=self.hard_button.isChecked(),
                              score_min=None if score_min <= self.score_min.minimum() else score_min)
        self._update_counts()
        self._keep_current_visible()

    def set_filters(self, **values: Any) -> None:
        """Set filter controls programmatically: split, verdict, label, disagree, score_min, hard."""
        combos = {"split": self.split_combo, "verdict": self.verdict_combo, "label": self.class_combo}
        for name, value in values.items():
            if name in combos:
                combo = combos[name]
                combo.setCurrentIndex(max(0, combo.findData(value)))
            elif name == "disagree":
                self.disagree_check.setChecked(bool(value))
            elif name == "score_min":
                self.score_min.setValue(self.score_min.minimum() if value is None else float(value))
            elif name == "hard":
                self.hard_button.setChecked(bool(value))
            else:
                raise TypeError(f"unknown filter {name!r}")

    def _on_hard_cases(self, on: bool) -> None:
        if on:
            self.proxy.sort(COL_MARGIN, Qt.SortOrder.AscendingOrder)
            self.table.horizontalHeader().setSortIndicator(COL_MARGIN, Qt.SortOrder.AscendingOrder)
        self._apply_filter()
        if not on:
            self._sort_default()
        self.select_row(0)

    def _sort_default(self) -> None:
        if self.hard_button.isChecked():
            column, order = COL_MARGIN, Qt.SortOrder.AscendingOrder
        elif self.predictions is not None:
            column, order = COL_SCORE, Qt.SortOrder.DescendingOrder
        else:
            column, order = COL_IMAGE, Qt.SortOrder.AscendingOrder
        self.table.sortByColumn(column, order)

    def _keep_current_visible(self) -> None:
        """After a filter change: keep the current image if it still shows, else show the first."""
        row = self.proxy_row_of(self.current_key) if self.current_key else -1
        if row >= 0:
            self._select_proxy_row(row, show=False)
        elif self.dataset is not None:
            self.select_row(0)

    # ------------------------------------------------------------------ navigation
    def proxy_row_of(self, key: str) -> int:
        src = self.model.row_of(key)
        if src < 0:
            return -1
        return self.proxy.mapFromSource(self.model.index(src, 0)).row()

    def current_row(self) -> int:
        return self.proxy_row_of(self.current_key) if self.current_key else -1

    def select_row(self, row: int) -> bool:
        """Show the image at ``row`` of the filtered, sorted list."""
        if not 0 <= row < self.proxy.rowCount():
            if self.proxy.rowCount() == 0 and self.dataset is not None:
                self.current_key, self.frame = None, None
                self.viewer.set_frame(None, "No image matches the filters.")
                self.editor.set_image(None, None)
                self._update_label_controls()
            return False
        self._select_proxy_row(row, show=True)
        return True

    def select_key(self, key: str) -> bool:
        row = self.proxy_row_of(key)
        return self.select_row(row) if row >= 0 else False

    def _select_proxy_row(self, row: int, show: bool) -> None:
        index = self.proxy.index(row, 0)
        sel = self.table.selectionModel()
        if not show:
            sel.blockSignals(True)
        sel.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                            | QItemSelectionModel.SelectionFlag.Rows)
        if not show:
            sel.blockSignals(False)
            self.table.viewport().update()
        self.table.scrollTo(index)
        if show:
            item = index.data(ObjectRole)
            if item is not None and item.key != self.current_key:
                self.show_item(item)

    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        item = current.data(ObjectRole) if current.isValid() else None
        if item is not None and item.key != self.current_key:
            self.show_item(item)

    def next_image(self) -> bool:
        row = self.current_row()
        return self.select_row(row + 1) if row + 1 < self.proxy.rowCount() else False

    def previous_image(self) -> bool:
        row = self.current_row()
        return self.select_row(row - 1) if row > 0 else False

    # ------------------------------------------------------------------ showing an image
    def _frame_key(self, key: str) -> tuple[str, int]:
        return key, self._generation

    def _make_frame(self, item: ReviewItem):
        amap = score = None
        if self.predictions is not None and item.pred_index is not None:
            amap = self.predictions.result.maps[item.pred_index]
            score = float(self.predictions.result.scores[item.pred_index])  # raw: decide() applies the masks
        return partial(render_frame, item.record, item.key, amap, self.map_settings, self.mask_dir, score)

    def show_item(self, item: ReviewItem) -> None:
        self.editor.cancel_polygon()
        self.current_key = item.key
        self._update_label_controls()
        self._update_info()
        frame = self.cache.get_recent(self._frame_key(item.key))
        if self.viewer.mode == RECONSTRUCTION_MODE and frame is None:
            self._request_reconstruction(item)  # start at once, alongside decoding the frame
        if frame is not None:
            self._display(frame)
        else:
            self.viewer.message.setText("Loading…")
            self.viewer.message.setVisible(True)
            self.loader.request(self._frame_key(item.key), self._make_frame(item), urgent=True)
        self._prefetch_timer.start()

    def _prefetch(self) -> None:
        row = self.current_row()
        if row < 0:
            return
        rows = [row + i for i in range(1, PREFETCH_AHEAD + 1)] + [row - i for i in range(1, PREFETCH_BEHIND + 1)]
        for r in reversed(rows):  # nearest first is served first (newest wins)
            if 0 <= r < self.proxy.rowCount():
                item = self.proxy.index(r, 0).data(ObjectRole)
                fk = self._frame_key(item.key)
                if fk not in self.cache and not self.loader.is_pending(fk):
                    self.loader.request(fk, self._make_frame(item), urgent=False)

    @Slot(object, object)
    def _on_frame_loaded(self, fkey, frame: ReviewFrame) -> None:
        if fkey[1] != self._generation:
            return  # made for another model / colormap
        self.cache.put(fkey, frame)
        if fkey[0] == self.current_key:
            self._display(frame)

    @Slot(object, str)
    def _on_frame_failed(self, fkey, message: str) -> None:
        if fkey[1] == self._generation and fkey[0] == self.current_key:
            self.frame = None
            self.viewer.set_frame(None, f"Cannot show this image: {message}")
            self.editor.set_image(None, None)

    def _display(self, frame: ReviewFrame) -> None:
        self.frame = frame
        self.viewer.set_frame(frame)
        pixel_thr = self.map_settings.pixel_threshold if self.map_settings else None
        self.editor.set_image(frame.shape, frame.mask, frame.amap, pixel_thr)
        self._update_mask_state()
        self._update_reconstruction()
        self.frameShown.emit(frame.key)

    def _current_item(self) -> ReviewItem | None:
        row = self.model.row_of(self.current_key) if self.current_key else -1
        return self.model.item(row) if row >= 0 else None

    # ------------------------------------------------------------------ labelling
    def current_label(self) -> dict[str, Any] | None:
        return self.model.label(self.current_key) if self.current_key else None

    def set_verdict(self, verdict: str, defect_class: str | None = None, advance: bool = False) -> bool:
        """Set OK / NG (and optionally the class) of the current image as one undoable edit."""
        item = self._current_item()
        if item is None:
            return False
        old = clean_label(self.model.label(item.key))
        new = dict(old or {"note": ""})
        new["verdict"] = verdict
        if verdict == "OK":
            new["defect_class"] = None
        elif defect_class is not None:
            new["defect_class"] = defect_class
        new = clean_label(new)
        if new != old:
            self.undo_stack.push(LabelCommand(self, item.key, old, new, item.record.path.name))
        if advance and self.advance_check.isChecked():
            self.next_image()
        self._update_label_controls()
        return True

    def set_class_by_number(self, index: int) -> bool:
        """Class key: NG with the ``index``-th defect class (0-based)."""
        if not 0 <= index < len(self.classes):
            return False
        return self.set_verdict("NG", self.classes[index], advance=True)

    def set_note(self, note: str) -> None:
        item = self._current_item()
        if item is None:
            return
        old = clean_label(self.model.label(item.key))
        new = clean_label({**(old or {}), "note": note.strip()})
        if new != old:
            self.undo_stack.push(LabelCommand(self, item.key, old, new, item.record.path.name))

    def _on_note_edited(self) -> None:
        if not self._filling_controls:
            self.set_note(self.note_edit.text())

    def clear_label(self) -> None:
        item = self._current_item()
        if item is None:
            return
        old = clean_label(self.model.label(item.key))
        if old is not None:
            self.undo_stack.push(LabelCommand(self, item.key, old, None, item.record.path.name))

    def apply_label(self, key: str, label: dict[str, Any] | None) -> None:
        """Write one label row (called by undo commands) and refresh what shows it."""
        workspace = self.session.workspace
        if workspace is None or self.dataset_id is None:
            return
        label = clean_label(label)
        try:
            workspace.set_label(self.dataset_id, key, label["verdict"] if label else None,
                                label["defect_class"] if label else None, label["note"] if label else "")
        except WorkspaceError as exc:
            errors.show_error(self, "Cannot save the label", str(exc))
            return
        self.model.set_label(key, label)
        if key == self.current_key:
            self._update_label_controls()
            self._update_info()
        self._update_counts()
        self.labelEdited.emit(self.dataset_id, key, "verdict")
        self.labelsChanged.emit(self.dataset_id)

    def set_classes(self, names: list[str]) -> list[str]:
        """Replace the defect classes of this dataset (stored in the workspace settings)."""
        if self.session.workspace is None or self.dataset_id is None:
            return []
        self.classes = save_classes(self.session.workspace, self.dataset_id, names)
        self._rebuild_class_buttons()
        self._fill_filters()
        return self.classes

    def edit_classes(self) -> None:
        text, ok = QInputDialog.getMultiLineText(self, "Defect classes",
                                                 "One defect class per line (keys 3-9 pick the first seven):",
                                                 "\n".join(self.classes))
        if ok:
            self.set_classes(text.splitlines())

    def _rebuild_class_buttons(self) -> None:
        for button in self.class_buttons:
            self.class_grid.removeWidget(button)
            button.deleteLater()
        self.class_buttons = []
        for i, name in enumerate(self.classes):
            shortcut = f"{CLASS_KEYS[i]}  " if i < len(CLASS_KEYS) else ""
            button = QPushButton(f"{shortcut}{name}")
            button.setCheckable(True)
            button.setToolTip(f"NG, defect class '{name}'" + (f" (key {CLASS_KEYS[i]})" if shortcut else ""))
            button.clicked.connect(partial(self.set_verdict, "NG", name, True))
            self.class_grid.addWidget(button, i // 2, i % 2)
            self.class_buttons.append(button)
        self._update_label_controls()

    # ------------------------------------------------------------------ masks
    def _on_mask_edited(self, before: np.ndarray, after: np.ndarray) -> None:
        key = self.current_key
        if key is None:
            return
        had_reviewed = self.frame is not None and self.frame.key == key and self.frame.mask_source == "reviewed"
        self.undo_stack.push(MaskCommand(self, key, before if had_reviewed else None, after))

    def revert_mask(self) -> None:
        """Delete the reviewed mask of the current image (undoable)."""
        if self.current_key is None or self.frame is None or self.frame.mask_source != "reviewed":
            return
        before = self.editor.mask if self.editor.mask is not None else np.zeros(self.frame.shape, bool)
        self.undo_stack.push(MaskCommand(self, self.current_key, before, None, "use dataset mask"))

    def apply_mask(self, key: str, mask: np.ndarray | None) -> None:
        """Save (``mask``) or delete (None) the reviewed mask of ``key``; called by commands."""
        if self.mask_dir is None or self.dataset_id is None:
            return
        try:
            if mask is None:
                delete_mask(self.mask_dir, key)
            else:
                save_mask(self.mask_dir, key, mask)
        except (LabelError, OSError) as exc:
            errors.show_error(self, "Cannot save the mask", str(exc))
            return
        self.model.set_has_mask(key, mask is not None)
        # frames in the cache carry the mask they were made with: update them
        row = self.model.row_of(key)
        shown = None
        for fkey, frame in list(self.cache.items()):
            if fkey[0] == key:
                if mask is None:
                    frame.mask, frame.mask_source = current_mask(self.model.item(row).record, key, None, frame.shape)
                else:
                    frame.mask, frame.mask_source = mask.copy(), "reviewed"
                shown = frame
        if self.frame is not None and self.frame.key == key:
            if shown is None or shown is not self.frame:
                if mask is None:
                    self.frame.mask, self.frame.mask_source = current_mask(
                        self.model.item(row).record, key, None, self.frame.shape)
                else:
                    self.frame.mask, self.frame.mask_source = mask.copy(), "reviewed"
            if self.editor.mask is None or self.frame.mask is None or not np.array_equal(self.editor.mask, self.frame.mask):
                self.editor.replace_mask(self.frame.mask)
                self.viewer.refresh_mask()
            self._update_mask_state()
        self._update_counts()
        self.labelEdited.emit(self.dataset_id, key, "mask")
        self.labelsChanged.emit(self.dataset_id)

    def _update_mask_state(self) -> None:
        frame = self.frame
        if frame is None:
            self.mask_state.setText("")
        else:
            self.mask_state.setText({"reviewed": "Showing your mask (saved).",
                                     "dataset": "Showing the dataset's mask: edit it to make it yours.",
                                     "none": "No mask: draw one, or fill it from the heat map."}[frame.mask_source])
        self.revert_mask_button.setEnabled(frame is not None and frame.mask_source == "reviewed")
        has_map = frame is not None and frame.amap is not None
        self.fill_heat_button.setEnabled(has_map)
        self.tool_buttons[FILL].setEnabled(has_map)

    # ------------------------------------------------------------------ view settings
    def _restore_view_settings(self) -> None:
        workspace = self.session.workspace
        if workspace is None:
            return
        name = workspace.get_setting(COLORMAP_KEY, "Jet")
        opacity = workspace.get_setting(OPACITY_KEY, 45)
        for w in (self.colormap_combo, self.opacity_slider):
            w.blockSignals(True)
        if self.colormap_combo.findText(str(name)) >= 0:
            self.colormap_combo.setCurrentText(str(name))
        self.opacity_slider.setValue(int(opacity) if isinstance(opacity, (int, float)) else 45)
        for w in (self.colormap_combo, self.opacity_slider):
            w.blockSignals(False)
        self.viewer.set_overlay(opacity=self.opacity_slider.value() / 100.0)

    def _on_opacity(self, value: int) -> None:
        self.viewer.set_overlay(opacity=value / 100.0)
        if self.session.workspace is not None:
            self.session.workspace.set_setting(OPACITY_KEY, int(value))

    def _on_colormap(self, name: str) -> None:
        if self.session.workspace is not None:
            self.session.workspace.set_setting(COLORMAP_KEY, name)
        if self.map_settings is None:
            return
        self.map_settings = MapSettings(self.map_settings.scale, self.map_settings.pixel_threshold,
                                        COLORMAPS[name], self.map_settings.min_area, self.map_settings.policy)
        self._generation += 1
        self.cache.clear()
        self.loader.clear()
        item = self._current_item()
        if item is not None:
            self.current_key = None  # force a re-render of the same image
            self.show_item(item)

    # ------------------------------------------------------------------ jobs
    def evaluate_reviewed(self) -> Worker | None:
        if self.predictions is None or self.dataset is None or self.session.workspace is None:
            self.metrics_label.setText("Train or select a model first: metrics need its predictions.")
            return None
        worker = Worker(reviewed_metrics, self.predictions.result, dict(self.model.labels), self.mask_dir,
                        self.dataset.root)
        worker.finished.connect(self._on_reviewed_metrics)
        self.metrics_label.setText("Computing…")
        self.job = self.session.jobs.start(worker, "Metrics with reviewed labels")
        return worker

    def _on_reviewed_metrics(self, outcome) -> None:
        result, reviewed = outcome
        before = self.predictions.result if self.predictions else None

        def fmt(name: str) -> str:
            new = getattr(result, name)
            old = getattr(before, name) if before is not None else None
            text = "n/a" if new is None else f"{new:.3f}"
            return text + (f" (was {old:.3f})" if old is not None and new is not None and abs(old - new) > 5e-4 else "")

        self.metrics_label.setText(f"Reviewed ground truth ({reviewed.n_reviewed} reviewed): image AUROC "
                                   f"{fmt('image_auroc')}, pixel AUROC {fmt('pixel_auroc')}, AUPRO {fmt('aupro')}")

    def export_labels(self, fmt: str, out: str | Path | None = None) -> Worker | None:
        """Export the reviewed labels as ``"mvtec"`` (folder) or ``"coco"`` (JSON file)."""
        if self.dataset is None or self.session.workspace is None:
            return None
        if out is None:
            if fmt == "mvtec":
                out = QFileDialog.getExistingDirectory(self, "Choose a new, empty folder for the MVTec export")
            else:
                out, _ = QFileDialog.getSaveFileName(self, "Save COCO labels", f"{self.dataset.name}_labels.json",
                                                     "COCO JSON (*.json)")
            if not out:
                return None
        worker = Worker(export_labels, fmt, self.dataset, dict(self.model.labels), self.mask_dir, Path(out),
                        list(self.classes))
        worker.finished.connect(lambda report: self.metrics_label.setText(f"Exported {report.summary()}"))
        self.job = self.session.jobs.start(worker, f"Export labels ({fmt.upper()})")
        return worker

    def import_labels(self, source: str | Path | None = None) -> Worker | None:
        """Import verdicts and masks from an MVTec folder or a COCO JSON file (one undo step)."""
        if self.dataset is None or self.session.workspace is None:
            return None
        if source is None:
            source, _ = QFileDialog.getOpenFileName(self, "Import labels (COCO JSON), or cancel to pick an MVTec folder",
                                                    "", "COCO JSON (*.json)")
            if not source:
                source = QFileDialog.getExistingDirectory(self, "Import labels from an MVTec folder")
            if not source:
                return None
        worker = Worker(import_labels, Path(source), self.dataset)
        dataset_id = self.dataset_id
        worker.finished.connect(lambda outcome, d=dataset_id: self._on_imported(outcome, d))
        self.job = self.session.jobs.start(worker, "Import labels")
        return worker

    def _on_imported(self, outcome, dataset_id: int | None) -> None:
        if dataset_id != self.dataset_id:
            return
        items, report = outcome
        self.undo_stack.beginMacro(f"import {len(items)} label(s)")
        try:
            for item in items:
                if item.mask is not None:
                    row = self.model.row_of(item.key)
                    before = None
                    if row >= 0 and item.key in self.model.masks and self.mask_dir is not None:
                        from workbench.core.labels import load_mask

                        before = load_mask(self.mask_dir, item.key)
                    self.undo_stack.push(MaskCommand(self, item.key, before, item.mask, "import mask"))
                old = clean_label(self.model.label(item.key))
                new = clean_label({"verdict": item.verdict, "defect_class": item.defect_class, "note": item.note})
                if new != old:
                    self.undo_stack.push(LabelCommand(self, item.key, old, new, "import"))
        finally:
            self.undo_stack.endMacro()
        self.metrics_label.setText(f"Imported {report.summary()}")

    # ------------------------------------------------------------------ refreshing
    def _update_all(self) -> None:
        self._update_counts()
        self._update_info()
        self._update_label_controls()
        self._update_mask_state()
        has = self.dataset is not None
        for w in (self.ok_button, self.ng_button, self.classes_button, self.note_edit, self.clear_button,
                  self.prev_button, self.next_button, self.export_mvtec_button, self.export_coco_button,
                  self.import_button, self.clear_mask_button):
            w.setEnabled(has)
        self.metrics_button.setEnabled(self.predictions is not None)
        self._update_recon_control()
        self.hard_button.setEnabled(self.predictions is not None)
        self.disagree_check.setEnabled(self.predictions is not None)
        self.score_min.setEnabled(self.predictions is not None)

    # ------------------------------------------------------------------ reconstruction view
    def _update_recon_control(self) -> None:
        """Offer the reconstruction view only when the reviewed model reconstructs images."""
        preds = self.predictions
        method = preds.metadata.get("method") if preds is not None else None
        supported, why = reconstruction_support(method) if preds is not None else (
            False, "Select a trained reconstruction model (autoencoder, GANomaly, DRAEM) to compare each image "
                   "with its reconstruction.")
        model_dir = preds.model_dir if preds is not None and supported else None
        if model_dir != self._recon_dir:  # another model: forget its reconstructions and the loaded net
            self._recon_dir, self._recon_model, self._recon_wanted = model_dir, None, None
            self.recon_cache.clear()
            self.recon_errors.clear()
            if self.recon_worker is not None and self.recon_worker.running:
                self.recon_worker.cancel()
        self.recon_supported = supported
        self.recon_mode_button.setEnabled(supported)
        self.recon_mode_button.setToolTip(RECON_BUTTON_TIP if supported else why)
        if not supported and self.viewer.mode == RECONSTRUCTION_MODE:
            self.set_view_mode(OVERLAY_MODE)
        elif supported and self.viewer.mode == RECONSTRUCTION_MODE:
            self._update_reconstruction()

    def set_view_mode(self, mode: str) -> bool:
        """``"overlay"`` or ``"reconstruction"`` (input | reconstruction | residual); False if
        the reviewed model cannot reconstruct."""
        if mode == RECONSTRUCTION_MODE and not self.recon_supported:
            self.overlay_mode_button.setChecked(True)
            return False
        self.viewer.set_mode(mode)
        recon = mode == RECONSTRUCTION_MODE
        (self.recon_mode_button if recon else self.overlay_mode_button).setChecked(True)
        self.side_check.setEnabled(not recon)  # the reconstruction view is a side-by-side of its own
        if recon:
            item = self._current_item()
            if item is not None and (self.frame is None or self.frame.key != item.key):
                self._request_reconstruction(item)
            self._update_reconstruction()
        elif self.frame is not None and self.viewer.message.text().startswith(("Reconstructing", "Cannot reconstruct")):
            self.viewer.message.setVisible(False)
        return True

    def toggle_reconstruction_view(self) -> None:
        self.set_view_mode(OVERLAY_MODE if self.viewer.mode == RECONSTRUCTION_MODE else RECONSTRUCTION_MODE)

    def _update_reconstruction(self) -> None:
        """Show the current image's reconstruction if it is there, else ask for it."""
        if self.viewer.mode != RECONSTRUCTION_MODE or self.frame is None or self.frame.key != self.current_key:
            return
        rkey = self._frame_key(self.frame.key)
        rec: Reconstruction | None = self.recon_cache.get_recent(rkey)
        if rec is not None:
            self.viewer.set_reconstruction(rec.image, rec.heat)
            self.viewer.message.setVisible(False)
            return
        self.viewer.set_reconstruction(None)
        error = self.recon_errors.get(rkey)
        self.viewer.message.setText(f"Cannot reconstruct this image: {error}" if error else "Reconstructing…")
        self.viewer.message.setVisible(True)
        if error is None:
            item = self._current_item()
            if item is not None:
                self._request_reconstruction(item)

    def _request_reconstruction(self, item: ReviewItem) -> None:
        """Reconstruct ``item`` in a worker; while one runs, remember only the latest wish."""
        rkey = self._frame_key(item.key)
        if self._recon_dir is None or rkey in self.recon_cache or rkey in self.recon_errors:
            return
        self._recon_wanted = item
        if self.recon_worker is not None and self.recon_worker.state in ("pending", "running"):
            return  # started when the running one ends
        self._recon_wanted = None
        need_map = self.predictions is None or item.pred_index is None
        worker = Worker(reconstruct_image, self._recon_dir, self._recon_model, item.key, item.record.path,
                        self.map_settings, need_map)
        generation, model_dir = self._generation, self._recon_dir
        worker.finished.connect(lambda rec, g=generation: self._on_reconstruction(rec, g))
        worker.failed.connect(lambda msg, _details, k=rkey, d=model_dir: self._on_reconstruction_failed(k, d, msg))
        worker.ended.connect(self._on_recon_worker_ended)
        self.recon_worker = self.session.jobs.start(worker, f"Reconstruct {item.record.path.name}", show_errors=False)

    def _on_reconstruction(self, rec: Reconstruction, generation: int) -> None:
        if rec.model_dir != self._recon_dir:
            return  # made by a model no longer reviewed
        self._recon_model = rec.model
        if generation != self._generation:
            return  # made for another colour map / predictions: its residual is stale
        self.recon_cache.put((rec.key, generation), rec)
        if rec.key == self.current_key:  # the user may have moved on meanwhile: then only cache it
            self._update_reconstruction()

    def _on_reconstruction_failed(self, rkey: tuple[str, int], model_dir: Path, message: str) -> None:
        if model_dir != self._recon_dir:
            return
        self.recon_errors[rkey] = message
        log.warning("reconstruction of %s failed: %s", rkey[0], message)
        if rkey[0] == self.current_key:
            self._update_reconstruction()

    def _on_recon_worker_ended(self) -> None:
        item, self._recon_wanted = self._recon_wanted, None
        if item is not None and self.viewer.mode == RECONSTRUCTION_MODE and item.key == self.current_key:
            self._request_reconstruction(item)

    def _update_counts(self) -> None:
        c = self.model.counts()
        if not c["total"]:
            self.counts_label.setText("")
            self.count_label.setText("")
            return
        text = f"<b>{c['reviewed']}</b> reviewed · <b>{c['original']}</b> original labels"
        extra = []
        if c["changed"]:
            extra.append(f"{c['changed']} verdict(s) changed")
        if c["masks"]:
            extra.append(f"{c['masks']} mask(s) drawn")
        self.counts_label.setText(text + ("<br>" + ", ".join(extra) if extra else ""))
        self.count_label.setText(f"{self.proxy.rowCount()} of {c['total']} images shown")

    def _update_info(self) -> None:
        item = self._current_item()
        if item is None:
            self.info_label.setText("" if self.dataset else "No dataset open.")
            return
        parts = [f"<b>{item.key}</b>"]
        if item.score is not None:
            verdict = self.model.model_decision(item)
            colour = {"OK": "#1e7a3c", "REVIEW": "#b26a00"}.get(verdict or "", "#b3261e")
            decision = "" if verdict is None else f" → <b style='color:{colour}'>{verdict}</b>"
            thr = f" (threshold {self.image_threshold:.4g}" if self.image_threshold is not None else ""
            if thr and self.policy is not None and self.policy.ok_threshold is not None:
                thr += f", REVIEW from {self.policy.ok_threshold:.4g}"
            thr += ")" if thr else ""
            unsaved = " <i>(unsaved policy)</i>" if self.policy_unsaved else ""
            parts.append(f"score {item.score:.4g}{thr}{decision}{unsaved}")
        elif self.predictions is None:
            parts.append("no model scores" + (" (train a model in step 2)" if self.session.active_model is None else ""))
        else:
            parts.append("not scored (the model scores the test split)")
        parts.append(f"folder: {item.record.label}")
        review = self.model.review_text(item)
        if review:
            parts.append(f"review: {review}")
        if self.model.disagrees(item):
            parts.append("<b style='color:#b3261e'>model disagrees</b>")
        self.info_label.setText(" · ".join(parts))

    def _update_label_controls(self) -> None:
        label = self.current_label() or {}
        verdict, cls = label.get("verdict"), label.get("defect_class")
        self.ok_button.setChecked(verdict == "OK")
        self.ng_button.setChecked(verdict == "NG")
        for button, name in zip(self.class_buttons, self.classes):
            button.setChecked(verdict != "OK" and cls == name)
        self._filling_controls = True
        if not self.note_edit.hasFocus() or self.note_edit.text() != (label.get("note") or ""):
            self.note_edit.setText(label.get("note") or "")
        self._filling_controls = False

