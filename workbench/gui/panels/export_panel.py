"""Step 5, Export: ship a model, check the shipped graph, hand over labels and the report.

Pick a model of the current dataset and one of its saved calibrations (or its active policy);
then, each in a background job with progress and Cancel:

* **Deployable package**: ONNX graph + ``model.json`` carrying the chosen policy
  (:func:`workbench.core.export.deploy.export_package`), optionally also zipped;
* **Parity check**: a few test images scored by the torch model and by onnxruntime, both decided
  by the exported policy; decisions and the largest score / map difference are shown;
* **Labels**: the reviewed labels as an MVTec AD folder or COCO JSON (``core/labels``);
* **Inspection report**: the self-contained HTML (and optionally the PDF) of
  :mod:`workbench.core.report` at the chosen calibration.

The panel only gathers choices and starts core calls; it computes nothing itself.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton,
    QScrollArea, QSpinBox, QStyle, QVBoxLayout, QWidget,
)

from workbench.core.export.deploy import ExportOutcome, ParityResult, export_package, parity_check, parity_images
from workbench.core.workspace import ModelEntry
from workbench.gui.session import Session
from workbench.gui.widgets import errors
from workbench.gui.widgets.parity_table import ParityTable
from workbench.gui.widgets.path_picker import PathPicker
from workbench.gui.workers import Worker

log = logging.getLogger(__name__)

ACTIVE = ""  # calibration combo data for "the model's active policy"
EXPORTS_DIR = "exports"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


class ExportPanel(QWidget):
    """Emits ``exported(Path)`` when a package was written."""

    exported = Signal(object)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.job: Worker | None = None
        self.last_export: ExportOutcome | None = None
        self.parity: ParityResult | None = None
        icon = self.style().standardIcon
        sp = QStyle.StandardPixmap

        # --- model and policy
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("exportModel")
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(18)
        self.model_combo.currentIndexChanged.connect(self._on_model_chosen)
        self.calibration_combo = QComboBox()
        self.calibration_combo.setObjectName("exportCalibration")
        self.calibration_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.calibration_combo.setMinimumContentsLength(18)
        self.calibration_combo.currentIndexChanged.connect(lambda _i: self._suggest_paths())
        self.policy_label = QLabel("")
        self.policy_label.setWordWrap(True)
        chooser = QGroupBox("Model and inspection policy")
        form = QFormLayout(chooser)
        form.addRow("Model:", self.model_combo)
        form.addRow("Calibration:", self.calibration_combo)
        form.addRow(self.policy_label)

        # --- package
        self.export_dir = PathPicker("folder", "Folder for the exported package (new or empty)",
                                     placeholder="a new or empty folder")
        self.zip_box = QCheckBox("Also write a zip of the package")
        self.overwrite_box = QCheckBox("Replace an earlier export in this folder")
        self.export_button = QPushButton(icon(sp.SP_DialogSaveButton), "Export package")
        self.export_button.setToolTip("ONNX graph + model.json with the chosen policy (torch-free on the line)")
        self.export_button.clicked.connect(lambda: self.export_package())
        self.export_label = QLabel("Not exported yet.")
        self.export_label.setWordWrap(True)
        package = QGroupBox("Deployable package (ONNX + model.json)")
        pv = QVBoxLayout(package)
        pv.addWidget(self.export_dir)
        opts = QHBoxLayout()
        opts.addWidget(self.zip_box)
        opts.addWidget(self.overwrite_box)
        opts.addStretch(1)
        opts.addWidget(self.export_button)
        pv.addLayout(opts)
        pv.addWidget(self.export_label)

        # --- parity
        self.parity_count = QSpinBox()
        self.parity_count.setRange(1, 64)
        self.parity_count.setValue(6)
        self.parity_count.setToolTip("Test images scored by both runtimes (half good, half defective)")
        self.parity_button = QPushButton(icon(sp.SP_DialogApplyButton), "Run parity check")
        self.parity_button.setToolTip("Score test images with torch and with onnxruntime; compare the decisions")
        self.parity_button.clicked.connect(lambda: self.run_parity())
        self.parity_label = QLabel("Export first, then compare torch and onnxruntime on a few test images.")
        self.parity_label.setWordWrap(True)
        self.parity_table = ParityTable()
        parity = QGroupBox("Parity check: torch vs onnxruntime")
        qv = QVBoxLayout(parity)
        row = QHBoxLayout()
        row.addWidget(QLabel("Images:"))
        row.addWidget(self.parity_count)
        row.addStretch(1)
        row.addWidget(self.parity_button)
        qv.addLayout(row)
        qv.addWidget(self.parity_label)
        qv.addWidget(self.parity_table)

        # --- labels
        self.mvtec_button = QPushButton(icon(sp.SP_DirIcon), "MVTec folder…")
        self.mvtec_button.setToolTip("Images + reviewed masks as an MVTec AD category folder (a new, empty folder)")
        self.mvtec_button.clicked.connect(lambda: self.export_labels("mvtec"))
        self.coco_button = QPushButton(icon(sp.SP_FileIcon), "COCO JSON…")
        self.coco_button.setToolTip("Reviewed labels and masks as one COCO JSON file")
        self.coco_button.clicked.connect(lambda: self.export_labels("coco"))
        self.labels_label = QLabel("The dataset's labels, with your Review verdicts and masks.")
        self.labels_label.setWordWrap(True)
        labels = QGroupBox("Labels")
        lg = QGridLayout(labels)
        lg.addWidget(self.labels_label, 0, 0, 1, 3)
        lg.addWidget(self.mvtec_button, 1, 0)
        lg.addWidget(self.coco_button, 1, 1)
        lg.setColumnStretch(2, 1)

        # --- report
        self.report_path = PathPicker("save", "Save the inspection report", "HTML (*.html)", "report.html")
        self.pdf_box = QCheckBox("Also a PDF (same name, .pdf)")
        self.report_button = QPushButton(icon(sp.SP_FileDialogDetailedView), "Write report")
        self.report_button.setToolTip("Metrics with intervals, curves, confusion matrix at the policy, gallery of "
                                      "escapes and false alarms, run record: one HTML file")
        self.report_button.clicked.connect(lambda: self.write_report())
        self.report_label = QLabel("")
        self.report_label.setWordWrap(True)
        report = QGroupBox("Inspection report")
        rv = QVBoxLayout(report)
        rv.addWidget(self.report_path)
        rrow = QHBoxLayout()
        rrow.addWidget(self.pdf_box)
        rrow.addStretch(1)
        rrow.addWidget(self.report_button)
        rv.addLayout(rrow)
        rv.addWidget(self.report_label)

        # --- progress of the running job
        self.job_label = QLabel("No job running")
        self.job_bar = QProgressBar()
        self.job_bar.setRange(0, 1000)
        self.job_bar.setTextVisible(False)
        self.cancel_button = QPushButton(icon(sp.SP_BrowserStop), "Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        jobs = QHBoxLayout()
        jobs.addWidget(self.job_label, 1)
        jobs.addWidget(self.job_bar, 1)
        jobs.addWidget(self.cancel_button)

        content = QWidget()
        grid = QGridLayout(content)
        grid.addWidget(chooser, 0, 0)
        grid.addWidget(report, 0, 1)
        grid.addWidget(package, 1, 0)
        grid.addWidget(labels, 1, 1)
        grid.addWidget(parity, 2, 0, 1, 2)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(3, 1)
        scroll = QScrollArea()
        scroll.setObjectName("exportScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.addWidget(scroll, 1)
        outer.addLayout(jobs)

        session.modelsChanged.connect(self.refresh)
        session.activeModelChanged.connect(lambda _m: self.refresh())
        session.datasetChanged.connect(lambda *_: self.refresh())
        self.refresh()

    # ------------------------------------------------------------------ choices
    def model(self) -> ModelEntry | None:
        return self.model_combo.currentData(Qt.ItemDataRole.UserRole)

    def calibration(self) -> str | None:
        name = self.calibration_combo.currentData(Qt.ItemDataRole.UserRole)
        return name or None

    def refresh(self) -> None:
        """Refill the model list (models of the current dataset whose folder exists), the active one chosen."""
        models = [m for m in self.session.models() if m.exists]
        current = self.model()
        wanted = self.session.active_model.id if self.session.active_model else (current.id if current else None)
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for m in models:
            self.model_combo.addItem(f"{m.name} ({m.method})", m)
        index = next((i for i, m in enumerate(models) if m.id == wanted), len(models) - 1)
        self.model_combo.setCurrentIndex(index)
        self.model_combo.blockSignals(False)
        self._on_model_chosen()

    def _on_model_chosen(self, _index: int = -1) -> None:
        from workbench.core.calibration.calibrate import load_calibrations
        from workbench.core.calibration.policy import PolicyError, load_policy

        entry = self.model()
        self.calibration_combo.blockSignals(True)
        self.calibration_combo.clear()
        text = "No model of this dataset yet: train one in step 2."
        if entry is not None:
            try:
                policy = load_policy(entry.path)
                saved = load_calibrations(entry.path)
            except (PolicyError, ValueError, OSError) as exc:
                policy, saved, text = None, {}, f"Cannot read this model's policy: {exc}"
            if policy is not None:
                self.calibration_combo.addItem("Active policy", ACTIVE)
                for name in sorted(saved):
                    self.calibration_combo.addItem(name, name)
                text = ("Active policy: no NG threshold yet (calibrate in step 3)." if policy.ng_threshold is None
                        else f"Active policy: NG from {policy.ng_threshold:.5g}"
                             + (f", REVIEW from {policy.ok_threshold:.5g}" if policy.ok_threshold is not None else "")
                             + (f" ({policy.source})" if policy.source else "") + ".")
        self.calibration_combo.blockSignals(False)
        self.policy_label.setText(text)
        self.last_export, self.parity = None, None
        self.parity_table.show_result(None)
        self._suggest_paths()
        self._update_buttons()

    def _suggest_paths(self) -> None:
        entry, workspace = self.model(), self.session.workspace
        if entry is None or workspace is None:
            return
        stem = _safe(f"{entry.name}-{self.calibration() or 'active'}")
        self.export_dir.set_path(workspace.path / EXPORTS_DIR / stem)
        self.report_path.set_path(workspace.path / EXPORTS_DIR / f"{stem}-report.html")

    def _update_buttons(self) -> None:
        idle = self.job is None or not self.job.running
        has_model = self.model() is not None and self.session.dataset is not None
        for button in (self.export_button, self.report_button):
            button.setEnabled(idle and has_model)
        self.parity_button.setEnabled(idle and has_model and self.last_export is not None)
        for button in (self.mvtec_button, self.coco_button):
            button.setEnabled(idle and self.session.dataset is not None)
        self.cancel_button.setEnabled(not idle)

    # ------------------------------------------------------------------ jobs
    def _start(self, worker: Worker, title: str) -> Worker:
        self.job = worker
        self.job_label.setText(title)
        self.job_bar.setValue(0)
        worker.progress.connect(self._on_progress)
        worker.ended.connect(self._on_ended)
        worker.failed.connect(lambda message, _details: self.job_label.setText(f"{title} failed: {message}"))
        worker.cancelled.connect(lambda: self.job_label.setText(f"{title} cancelled"))
        worker.finished.connect(lambda _result: self.job_label.setText(f"{title}: done"))
        self.session.jobs.start(worker, title)
        self._update_buttons()
        return worker

    def _on_progress(self, event) -> None:
        if event.total > 0:
            self.job_bar.setValue(int(1000 * event.current / event.total))
        self.job_label.setText(event.stage + (f": {event.message}" if getattr(event, "message", "") else ""))

    def _on_ended(self) -> None:
        if self.job is not None and self.job.state == "finished":
            self.job_bar.setValue(1000)
        self._update_buttons()

    def cancel(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()

    def _need(self, what: str) -> ModelEntry | None:
        entry = self.model()
        if entry is None or self.session.dataset is None:
            errors.show_error(self, f"Cannot {what}", "Choose a dataset with a trained model first (steps 1 and 2).")
            return None
        return entry

    def export_package(self, out: str | Path | None = None, zip_path: str | Path | None = None) -> Worker | None:
        """Export the chosen model at the chosen calibration to ``out`` (default: the folder field)."""
        entry = self._need("export")
        if entry is None:
            return None
        out = Path(out) if out is not None else self.export_dir.path()
        if out is None:
            errors.show_error(self, "No export folder", "Choose a new or empty folder for the exported package.")
            return None
        if zip_path is None and self.zip_box.isChecked():
            zip_path = out.with_name(out.name + ".zip")
        worker = Worker(export_package, entry.path, out, calibration=self.calibration(), zip_path=zip_path,
                        overwrite=self.overwrite_box.isChecked())
        worker.finished.connect(self._on_exported)
        return self._start(worker, f"Export {entry.name}")

    def _on_exported(self, outcome: ExportOutcome) -> None:
        self.last_export = outcome
        thr = "no NG threshold" if outcome.ng_threshold is None else f"NG from {outcome.ng_threshold:.5g}"
        zipped = f"; zip: {outcome.zip_path}" if outcome.zip_path else ""
        self.export_label.setText(f"Exported to {outcome.export_dir} ({outcome.calibration or 'active policy'}: "
                                  f"{thr}){zipped}. Open it in the Inspector or with 'workbench predict --model'.")
        self.parity_label.setText("Run the parity check to compare torch and onnxruntime on test images.")
        self._update_buttons()
        self.exported.emit(outcome.export_dir)

    def run_parity(self, n: int | None = None) -> Worker | None:
        """Score ``n`` test images with torch and onnxruntime (the last export) and show both decisions."""
        entry = self._need("run the parity check")
        if entry is None or self.last_export is None:
            return None
        images = parity_images(self.session.dataset.test, n or self.parity_count.value())
        if not images:
            errors.show_error(self, "No test images", "The dataset has no test images to compare on.")
            return None
        worker = Worker(parity_check, entry.path, self.last_export.export_dir, images)
        worker.finished.connect(self._on_parity)
        return self._start(worker, "Parity check")

    def _on_parity(self, result: ParityResult) -> None:
        self.parity = result
        self.parity_table.show_result(result)
        colour = "#15803d" if result.decisions_equal else "#b91c1c"
        self.parity_label.setText(f"<span style='color:{colour}; font-weight:600'>"
                                  f"{'PASS' if result.decisions_equal else 'DIFFERENT'}</span>: {result.summary()}")

    def export_labels(self, fmt: str, out: str | Path | None = None) -> Worker | None:
        """The dataset's reviewed labels as ``"mvtec"`` (a new folder) or ``"coco"`` (a JSON file)."""
        from workbench.core.labels import dataset_labels_dir, load_classes
        from workbench.gui.widgets.review_jobs import export_labels

        workspace, entry, dataset = self.session.workspace, self.session.dataset_entry, self.session.dataset
        if workspace is None or entry is None or dataset is None:
            errors.show_error(self, "No dataset", "Open a dataset first (step 1).")
            return None
        if out is None:
            from PySide6.QtWidgets import QFileDialog

            if fmt == "mvtec":
                out = QFileDialog.getExistingDirectory(self, "Choose a new, empty folder for the MVTec export")
            else:
                out, _ = QFileDialog.getSaveFileName(self, "Save COCO labels", f"{dataset.name}_labels.json",
                                                     "COCO JSON (*.json)")
            if not out:
                return None
        worker = Worker(export_labels, fmt, dataset, workspace.labels(entry.id),
                        dataset_labels_dir(workspace.labels_dir, entry.id), Path(out),
                        load_classes(workspace, entry.id, dataset.defect_types))
        worker.finished.connect(lambda report: self.labels_label.setText(f"Exported {report.summary()}"))
        return self._start(worker, f"Export labels ({fmt.upper()})")

    def write_report(self, html: str | Path | None = None, pdf: bool | str | Path | None = None) -> Worker | None:
        """The inspection report of the chosen model and calibration (HTML, and PDF when asked)."""
        from workbench.gui.report_pdf import write_model_report

        entry = self._need("write the report")
        if entry is None:
            return None
        html = Path(html) if html is not None else self.report_path.path()
        if html is None:
            errors.show_error(self, "No report file", "Choose where to save the report (an .html file).")
            return None
        if html.suffix.lower() not in (".html", ".htm"):
            html = html.with_suffix(".html")
        if pdf is None:
            pdf = self.pdf_box.isChecked()
        pdf_path = html.with_suffix(".pdf") if pdf is True else (Path(pdf) if pdf else None)
        html.parent.mkdir(parents=True, exist_ok=True)
        worker = Worker(write_model_report, entry.path, self.session.dataset, html, pdf_path,
                        calibration=self.calibration())
        worker.finished.connect(lambda paths: self.report_label.setText(
            "Written: " + ", ".join(f"<a href='{p.as_uri()}'>{p.name}</a>" for p in paths)))
        self.report_label.setOpenExternalLinks(True)
        return self._start(worker, "Inspection report")
