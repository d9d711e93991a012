"""Step 1 - Dataset: import a folder, check what was found, browse the images.

Importing re-reads every file to find broken ones, which takes a while on large folders,
so it runs in a worker; the browser itself is a virtualised grid over an item model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QItemSelectionModel, QModelIndex, QSize, Qt, Slot
from PySide6.QtGui import QFont, QImage
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QListView,
    QPlainTextEdit, QPushButton, QSplitter, QTableView, QTabWidget, QVBoxLayout, QWidget,
)

from workbench.core.data import Dataset, DatasetError, ImageRecord, list_categories, read_image, read_mask
from workbench.core.visualize import draw_outline
from workbench.core.workspace import DatasetEntry
from workbench.gui.imaging import BackgroundImageLoader, fit_within, rgb_to_qimage
from workbench.gui.panels.import_box import ImportBox
from workbench.gui.pipelines import ImportOutcome, import_datasets, load_one_dataset
from workbench.gui.qtmodels import DatasetListModel, ImageFilterProxy, ImageListModel, ReportCountsModel
from workbench.gui.qtmodels.image_list import ANOMALOUS
from workbench.gui.qtmodels.roles import ObjectRole
from workbench.gui.session import Session
from workbench.gui.widgets import errors
from workbench.gui.widgets.audit_list import AuditDialog
from workbench.gui.widgets.image_preview import ImagePreview
from workbench.gui.workers import Worker

log = logging.getLogger(__name__)

PREVIEW_SIZE = 1024  # preview images are shrunk to this; enough for a full-HD screen


def render_preview(record: ImageRecord) -> QImage:
    """Pool thread: the image with its ground-truth mask outlined in red (core drawing)."""
    image = read_image(record.path)
    h, w = image.shape[:2]
    if record.mask_path is not None:
        mask = read_mask(record.mask_path, image.shape[:2])
        image = draw_outline(image, mask, (230, 20, 20), thickness=max(2, round(max(h, w) / 256)))
    qimage = rgb_to_qimage(fit_within(np.ascontiguousarray(image), PREVIEW_SIZE))
    qimage.setText("size", f"{w}×{h}")
    return qimage


class DatasetPanel(QWidget):
    """Import, switch and browse datasets of the open workspace."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.import_worker: Worker | None = None
        self.load_worker: Worker | None = None
        self.last_outcome: ImportOutcome | None = None
        self.audit_dialog: AuditDialog | None = None
        self._audit_target: tuple | None = None  # (workspace, dataset id) the last audit ran for

        self.datasets_model = DatasetListModel(self)
        self.images_model = ImageListModel(parent=self)
        self.proxy = ImageFilterProxy(self)
        self.proxy.setSourceModel(self.images_model)
        self.counts_model = ReportCountsModel(self)
        self.preview_loader = BackgroundImageLoader(threads=1, max_pending=1, parent=self)
        self.preview_loader.loaded.connect(self._on_preview_loaded)
        self.preview_loader.failed.connect(self._on_preview_failed)

        layout = QVBoxLayout(self)
        self.import_box = ImportBox()
        self.import_box.importRequested.connect(self.import_dataset)
        layout.addWidget(self.import_box)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        split.addWidget(self._build_dataset_list())
        split.addWidget(self._build_grid())
        split.addWidget(self._build_details())
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 3)
        split.setStretchFactor(2, 2)
        split.setSizes([180, 560, 400])
        layout.addWidget(split, 1)

        session.workspaceChanged.connect(self._on_workspace_changed)
        session.datasetsChanged.connect(self._refresh_datasets)
        session.datasetChanged.connect(self._on_dataset_changed)
        self._update_enabled()

    # ------------------------------------------------------------------ building
    def _build_dataset_list(self) -> QWidget:
        self.dataset_view = QListView()
        self.dataset_view.setModel(self.datasets_model)
        self.dataset_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.dataset_view.selectionModel().currentChanged.connect(self._dataset_clicked)
        box = QGroupBox("Datasets")
        box.setToolTip("Datasets in this workspace: click one to switch")
        lay = QVBoxLayout(box)
        lay.addWidget(self.dataset_view)
        box.setMinimumWidth(170)
        return box

    def _build_grid(self) -> QWidget:
        self.split_combo = QComboBox()
        self.class_combo = QComboBox()
        self.split_combo.currentIndexChanged.connect(self._apply_filter)
        self.class_combo.currentIndexChanged.connect(self._apply_filter)
        self.count_label = QLabel("")
        self.count_label.setObjectName("hint")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Split"))
        bar.addWidget(self.split_combo)
        bar.addWidget(QLabel("Class"))
        bar.addWidget(self.class_combo)
        bar.addStretch(1)
        bar.addWidget(self.count_label)
        self.audit_button = QPushButton("Audit training images")
        self.audit_button.setToolTip("Score every good training image with models that never saw it (k-fold) "
                                     "and list the most suspicious ones, to exclude them from training")
        self.audit_button.clicked.connect(self.open_audit)
        bar.addWidget(self.audit_button)

        size = self.images_model.thumb_size
        self.grid = QListView()
        self.grid.setObjectName("thumbnailGrid")
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setUniformItemSizes(True)  # no per-item size queries: constant-time layout
        self.grid.setLayoutMode(QListView.LayoutMode.Batched)
        self.grid.setBatchSize(500)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setIconSize(QSize(size, size))
        self.grid.setGridSize(QSize(size + 18, size + 30))
        self.grid.setSpacing(4)
        self.grid.setWordWrap(False)
        self.grid.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.grid.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.grid.setModel(self.proxy)
        self.grid.selectionModel().currentChanged.connect(self._image_selected)

        box = QGroupBox("Images")
        lay = QVBoxLayout(box)
        lay.addLayout(bar)
        lay.addWidget(self.grid, 1)
        return box

    def _build_details(self) -> QWidget:
        self.preview = ImagePreview("Select an image to see it large, with its defect mask outlined in red.")
        self.caption = QLabel("")
        self.caption.setObjectName("hint")
        self.caption.setWordWrap(True)
        preview_box = QWidget()
        pl = QVBoxLayout(preview_box)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.preview, 1)
        pl.addWidget(self.caption)

        self.report_text = QPlainTextEdit()
        self.report_text.setReadOnly(True)
        self.report_text.setObjectName("report")
        self.report_text.setFont(QFont("monospace"))
        self.report_text.setPlaceholderText("The import report appears here: what was found, what was skipped and why.")
        self.counts_view = QTableView()
        self.counts_view.setModel(self.counts_model)
        self.counts_view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.counts_view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.counts_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.report_tabs = QTabWidget()
        self.report_tabs.addTab(self.counts_view, "Counts")
        self.report_tabs.addTab(self.report_text, "Import report")

        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.addWidget(preview_box)
        split.addWidget(self.report_tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([400, 230])  # room for the whole counts table of a typical dataset
        return split

    # ------------------------------------------------------------------ import
    def import_dataset(self, root: str | Path, layout: str = "auto",
                       categories: list[str] | None = None) -> Worker | None:
        """Import ``root`` in a worker; ``categories=None`` imports every category it has.

        Registered in the workspace only when the import finished (GUI thread)."""
        if self.session.workspace is None:
            errors.show_error(self, "No workspace", "Open or create a workspace before importing a dataset.")
            return None
        root = Path(root).expanduser()
        if categories is None:
            try:
                categories = list_categories(root, layout) or None
            except DatasetError as exc:
                errors.show_error(self, "Cannot import", str(exc))
                return None
        self.report_text.setPlainText(f"Importing {root} …")
        worker = Worker(import_datasets, root, layout, categories)
        workspace = self.session.workspace
        worker.finished.connect(lambda outcome, ws=workspace: self._on_imported(outcome, ws))
        worker.ended.connect(self._update_enabled)
        self.import_worker = self.session.jobs.start(worker, f"Import {root.name}")
        self._update_enabled()
        return worker

    def _on_imported(self, outcome: ImportOutcome, workspace=None) -> None:
        """Register what was imported, in the workspace the import was started for."""
        workspace = workspace or self.session.workspace
        if workspace is None or workspace is not self.session.workspace or workspace.closed:
            return  # the user switched workspace meanwhile: do not mix datasets into another
        self.last_outcome = outcome
        first: tuple[DatasetEntry, Dataset] | None = None
        for category, dataset in outcome.datasets:
            layout = dataset.layout if dataset.layout in ("mvtec", "visa", "folder") else outcome.layout
            entry = workspace.add_dataset("", outcome.root, layout, category)
            first = first or (entry, dataset)
        self.session.notify_datasets_changed()
        if first is not None:
            self.session.set_dataset(*first)
        if outcome.errors:
            msg = "\n\n".join(f"{cat or outcome.root.name}: {text}" for cat, text in outcome.errors)
            errors.show_error(self, "Some categories were not imported", msg)

    # ------------------------------------------------------------------ datasets
    def select_dataset(self, entry: DatasetEntry) -> Worker | None:
        """Make ``entry`` current, re-reading its folder in a worker."""
        if self.session.dataset_entry is not None and self.session.dataset_entry.id == entry.id:
            return None
        if self.load_worker is not None and self.load_worker.running:
            self.load_worker.cancel()
        self.report_text.setPlainText(f"Loading {entry.name} …")
        worker = Worker(load_one_dataset, entry.root, entry.category, entry.layout)
        worker.finished.connect(lambda dataset, e=entry, ws=self.session.workspace: self._on_loaded(e, dataset, ws))
        self.load_worker = self.session.jobs.start(worker, f"Load {entry.name}")
        return worker

    def _on_loaded(self, entry: DatasetEntry, dataset: Dataset, workspace) -> None:
        if workspace is self.session.workspace and workspace is not None:
            self.session.set_dataset(entry, dataset)

    def _dataset_clicked(self, current: QModelIndex, _previous: QModelIndex) -> None:
        entry = current.data(ObjectRole) if current.isValid() else None
        if entry is not None:
            self.select_dataset(entry)

    @Slot(object)
    def _on_workspace_changed(self, workspace) -> None:
        self._update_enabled()
        if workspace is None:
            return
        entries = self.session.datasets()
        last = self.session.last_dataset_id()
        chosen = next((e for e in entries if e.id == last), entries[0] if entries else None)
        if chosen is not None and chosen.exists:
            self.select_dataset(chosen)

    def _refresh_datasets(self) -> None:
        self.datasets_model.set_entries(self.session.datasets())
        self._select_current_in_list()

    def _select_current_in_list(self) -> None:
        entry = self.session.dataset_entry
        row = self.datasets_model.row_of(entry.id) if entry else -1
        sel = self.dataset_view.selectionModel()
        sel.blockSignals(True)  # reflecting the state, not a user click
        if row >= 0:
            sel.setCurrentIndex(self.datasets_model.index(row), QItemSelectionModel.SelectionFlag.ClearAndSelect)
        else:
            sel.clearSelection()
        sel.blockSignals(False)
        self.dataset_view.viewport().update()

    @Slot(object, object)
    def _on_dataset_changed(self, entry: DatasetEntry | None, dataset: Dataset | None) -> None:
        self._select_current_in_list()
        self.images_model.set_records(dataset.records if dataset else [])
        self.counts_model.set_report(dataset.report if dataset else None)
        self.counts_view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.report_text.setPlainText(dataset.report.summary() if dataset else "")
        self.preview.set_message("Select an image to see it large, with its defect mask outlined in red.")
        self.caption.setText("")
        self._fill_filters(dataset)
        self._update_enabled()

    # ------------------------------------------------------------------ browsing
    def _fill_filters(self, dataset: Dataset | None) -> None:
        for combo in (self.split_combo, self.class_combo):
            combo.blockSignals(True)
            combo.clear()
        self.split_combo.addItem("All splits", None)
        self.class_combo.addItem("All classes", None)
        if dataset is not None:
            for split in ("train", "val", "test"):
                if any(r.split == split for r in dataset.records):
                    self.split_combo.addItem(split, split)
            self.class_combo.addItem("good", "good")
            if dataset.defect_types:
                self.class_combo.addItem("any defect", ANOMALOUS)
                for label in dataset.defect_types:
                    self.class_combo.addItem(label, label)
        for combo in (self.split_combo, self.class_combo):
            combo.blockSignals(False)
        self._apply_filter()

    def _apply_filter(self) -> None:
        self.proxy.set_filter(self.split_combo.currentData(), self.class_combo.currentData())
        total = self.images_model.rowCount()
        shown = self.proxy.rowCount()
        self.count_label.setText(f"{shown} of {total} images" if total else "")

    def _image_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        record: ImageRecord | None = current.data(ObjectRole) if current.isValid() else None
        if record is None:
            return
        self.preview.set_message("Loading…")
        mask = ("mask outlined in red" if record.mask_path else
                "no mask for this defect image" if record.is_anomalous else "good image")
        self.caption.setText(f"<b>{record.path.name}</b> · {record.split} / {record.label} · {mask}")
        self.preview_loader.request(str(record.path), lambda r=record: render_preview(r))

    @Slot(object, QImage)
    def _on_preview_loaded(self, key: str, image: QImage) -> None:
        current = self.grid.currentIndex().data(ObjectRole)
        if current is None or str(current.path) != key:
            return  # the user has moved on
        self.preview.set_image(image)
        size = image.text("size")
        if size:
            self.caption.setText(self.caption.text() + f" · {size} px")

    @Slot(object, str)
    def _on_preview_failed(self, key: str, message: str) -> None:
        self.preview.set_message(f"Cannot show this image:\n{message}")

    # ------------------------------------------------------------------ training-set audit
    def open_audit(self, params: dict | None = None) -> AuditDialog | None:
        """Open the audit window and start the audit of the current dataset's good training images."""
        workspace, entry, dataset = self.session.workspace, self.session.dataset_entry, self.session.dataset
        if workspace is None or entry is None or dataset is None:
            errors.show_error(self, "Nothing to audit", "Import or select a dataset first.")
            return None
        if self.audit_dialog is None:
            self.audit_dialog = AuditDialog(self)
            self.audit_dialog.run_button.clicked.connect(lambda: self._start_audit(None))
            self.audit_dialog.list.exclusionChanged.connect(self._store_exclusions)
        self.audit_dialog.show()
        self.audit_dialog.raise_()
        if self.audit_dialog.worker is None or not self.audit_dialog.worker.running:
            self._start_audit(params)
        return self.audit_dialog

    def _start_audit(self, params: dict | None) -> None:
        workspace, entry, dataset = self.session.workspace, self.session.dataset_entry, self.session.dataset
        if workspace is None or entry is None or dataset is None or self.audit_dialog is None:
            return
        self._audit_target = (workspace, entry.id)
        out_dir = workspace.path / "audits" / f"dataset-{entry.id}"
        self.audit_dialog.start(self.session.jobs, dataset, out_dir, workspace.excluded_images(entry.id), params)

    def _store_exclusions(self, paths: list, excluded: bool) -> None:
        """GUI thread: the user's ticks go to the workspace the audit ran for."""
        workspace, dataset_id = self._audit_target or (None, None)
        if workspace is None or workspace.closed:
            return
        result = self.audit_dialog.list.result if self.audit_dialog else None
        scores = {str(e.path): e.score for e in result.entries} if result else {}
        try:
            workspace.set_excluded(dataset_id, paths, excluded, reason="audit (Dataset step)", scores=scores)
        except ValueError as exc:
            errors.show_error(self, "Cannot store the exclusion", str(exc))

    def _update_enabled(self) -> None:
        busy = self.import_worker is not None and self.import_worker.running
        self.import_box.set_busy(busy, enabled=self.session.workspace is not None)
        self.audit_button.setEnabled(self.session.dataset is not None and bool(self.session.dataset.train))
