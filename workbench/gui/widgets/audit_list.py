"""The training-set audit on the Dataset step: run it in the background, show the ranked list.

The audit itself is core (:func:`workbench.core.audit.audit_and_write`, the same job as
``workbench audit``); this file only starts it through the :class:`JobRunner`, follows its
progress, and shows the result: one row per good training image, most suspicious first, with
its heat-map overlay (written by the audit) as a thumbnail and an "Exclude from training"
check box. A tick is stored in the workspace at once (GUI thread); no file is moved.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton, QSpinBox,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from workbench.core.audit import OVERLAY_DIR, AuditResult, audit_and_write
from workbench.core.jobs import ProgressEvent
from workbench.gui.workers import Worker

THUMB = 96
COLUMNS = ("Heat map", "#", "Image", "Score", "Robust z", "Suspicious", "Exclude from training")
EXCLUDE_COL = COLUMNS.index("Exclude from training")


class AuditList(QWidget):
    """Ranked audit result with exclude/include toggles.

    ``exclusionChanged(paths, excluded)`` is emitted when the user ticks or unticks images;
    the owner stores it (the widget knows nothing of the workspace)."""

    exclusionChanged = Signal(list, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: AuditResult | None = None
        self.out_dir: Path | None = None
        self.summary = QLabel("Run the audit to list the most suspicious training images.")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setIconSize(QSize(THUMB, THUMB))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMB + 6)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("Image"), QHeaderView.ResizeMode.Stretch)
        self.table.itemChanged.connect(self._on_item_changed)
        self.exclude_flagged = QPushButton("Exclude all above the cut-off")
        self.exclude_flagged.setToolTip("Tick every image whose score is above the suggested cut-off")
        self.exclude_flagged.clicked.connect(lambda: self._set_many(True, only_suspicious=True))
        self.include_all = QPushButton("Include all")
        self.include_all.clicked.connect(lambda: self._set_many(False, only_suspicious=False))
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.exclude_flagged)
        buttons.addWidget(self.include_all)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self._update_enabled()

    def set_result(self, result: AuditResult, out_dir: Path | None = None) -> None:
        self.result, self.out_dir = result, out_dir
        n_flag = len(result.suspicious)
        self.summary.setText(
            f"<b>{len(result.entries)}</b> good training images scored by {result.folds}-fold {result.method} "
            f"(each by a model that never saw it) in {result.seconds:.0f} s. Suggested cut-off "
            f"<b>{result.cutoff:.4g}</b>: {result.rule}. <b>{n_flag}</b> image(s) above it."
            + (f"<br>Files: {out_dir}" if out_dir else ""))
        self.table.blockSignals(True)
        self.table.setRowCount(len(result.entries))
        for row, entry in enumerate(result.entries):
            thumb = QTableWidgetItem()
            if entry.overlay and out_dir is not None:
                pixmap = QPixmap(str(out_dir / OVERLAY_DIR / entry.overlay))
                if not pixmap.isNull():
                    thumb.setIcon(QIcon(pixmap.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                                      Qt.TransformationMode.SmoothTransformation)))
            self.table.setItem(row, 0, thumb)
            cells = (str(row + 1), entry.path.name, f"{entry.score:.4g}", f"{entry.z:+.1f}",
                     "yes" if entry.suspicious else "")
            for col, text in enumerate(cells, start=1):
                item = QTableWidgetItem(text)
                if col == 2:
                    item.setToolTip(str(entry.path))
                self.table.setItem(row, col, item)
            box = QTableWidgetItem("excluded" if entry.excluded else "")
            box.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            box.setCheckState(Qt.CheckState.Checked if entry.excluded else Qt.CheckState.Unchecked)
            self.table.setItem(row, EXCLUDE_COL, box)
        self.table.blockSignals(False)
        self._update_enabled()

    def excluded_paths(self) -> list[Path]:
        return [e.path for e in (self.result.entries if self.result else []) if e.excluded]

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self.result is None or item.column() != EXCLUDE_COL:
            return
        entry = self.result.entries[item.row()]
        excluded = item.checkState() == Qt.CheckState.Checked
        if excluded != entry.excluded:
            entry.excluded = excluded
            self.table.blockSignals(True)
            item.setText("excluded" if excluded else "")
            self.table.blockSignals(False)
            self.exclusionChanged.emit([entry.path], excluded)

    def _set_many(self, excluded: bool, only_suspicious: bool) -> None:
        if self.result is None:
            return
        changed = []
        self.table.blockSignals(True)
        for row, entry in enumerate(self.result.entries):
            if (only_suspicious and not entry.suspicious) or entry.excluded == excluded:
                continue
            entry.excluded = excluded
            item = self.table.item(row, EXCLUDE_COL)
            item.setCheckState(Qt.CheckState.Checked if excluded else Qt.CheckState.Unchecked)
            item.setText("excluded" if excluded else "")
            changed.append(entry.path)
        self.table.blockSignals(False)
        if changed:
            self.exclusionChanged.emit(changed, excluded)

    def _update_enabled(self) -> None:
        has = self.result is not None
        self.exclude_flagged.setEnabled(has and bool(self.result.suspicious))
        self.include_all.setEnabled(has)


class AuditDialog(QDialog):
    """Non-modal window: folds, Run/Cancel with progress, then the :class:`AuditList`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Audit training images")
        self.resize(900, 640)
        self.worker: Worker | None = None
        self.folds = QSpinBox()
        self.folds.setRange(2, 20)
        self.folds.setValue(5)
        self.folds.setToolTip("K: the images are split into K folds; each fold is scored by a model fitted "
                              "on the others (K fits in all)")
        self.run_button = QPushButton("Run audit")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.stage = QLabel("")
        self.stage.setObjectName("hint")
        top = QHBoxLayout()
        top.addWidget(QLabel("Folds"))
        top.addWidget(self.folds)
        top.addWidget(self.run_button)
        top.addWidget(self.cancel_button)
        top.addWidget(self.bar, 1)
        self.list = AuditList()
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.stage)
        layout.addWidget(self.list, 1)

    def start(self, jobs, dataset, out_dir: Path, excluded: list[Path], params: dict | None = None) -> Worker:
        """Run the audit of ``dataset`` as a background job of ``jobs`` (the app's JobRunner)."""
        worker = Worker(audit_and_write, dataset, out_dir, "patchcore", params, folds=self.folds.value(),
                        excluded=excluded)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(lambda result, d=out_dir: self.list.set_result(result, d))
        worker.cancelled.connect(lambda: self.stage.setText("Audit cancelled; nothing was changed."))
        worker.failed.connect(lambda msg, _d: self.stage.setText(f"Audit failed: {msg}"))
        worker.ended.connect(self._on_ended)
        self.worker = jobs.start(worker, f"Audit {dataset.name}")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.stage.setText("Starting the audit …")
        return worker

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def _on_progress(self, event: ProgressEvent) -> None:
        if event.stage == "Audit":
            self.bar.setValue(int(1000 * event.fraction))
        else:
            self.stage.setText(f"{event.stage}: {event.current}/{event.total}" if event.total else event.stage)

    def _on_ended(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.worker is not None and self.worker.state == "finished":
            self.bar.setValue(1000)
            self.stage.setText("Done. Tick images to exclude them from training (stored in the workspace; "
                               "no file is moved or deleted).")
