"""Review's evidence box: the test patch beside its nearest normal patch, and "Add OK images".

A thin view over :mod:`workbench.core.evidence` and :mod:`workbench.core.model_update`: a click
on the heat map (or *Explain worst spot*) runs ``nearest_normal_evidence`` in a worker and
shows the two patches, the training image, its position and the distance. *Add OK images to
model* adds the images the user labelled OK among those the list shows (its filters select
them) to the active model in a worker (``update_model``, a new package version) and then
reloads the Review predictions. The controller holds no algorithm; the review panel only
creates it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QMessageBox, QPushButton, QVBoxLayout, QWidget)

from workbench.core.evidence import EVIDENCE_METHODS
from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.model_update import UPDATABLE_METHODS
from workbench.gui.imaging import rgb_to_qimage
from workbench.gui.workers import Worker

log = logging.getLogger(__name__)
THUMB = 116


class EvidenceBox(QGroupBox):
    """Two patch pictures (test | nearest normal), a caption and the two actions."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Why flagged (evidence)", parent)
        self.setObjectName("evidenceBox")
        self.test_view, self.normal_view = QLabel(), QLabel()
        for view, tip in ((self.test_view, "The test patch (red box)"),
                          (self.normal_view, "The nearest normal patch of the training images (green box)")):
            view.setFixedSize(THUMB, THUMB)
            view.setAlignment(Qt.AlignmentFlag.AlignCenter)
            view.setObjectName("evidencePatch")
            view.setToolTip(tip)
        pictures = QHBoxLayout()
        pictures.addWidget(self.test_view)
        pictures.addWidget(self.normal_view)
        self.caption = QLabel("Click the heat map to see the nearest normal patch of that spot.")
        self.caption.setWordWrap(True)
        self.caption.setObjectName("hint")
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.worst_button = QPushButton("Explain worst spot")
        self.worst_button.setToolTip("The highest-scoring patch of this image and its nearest normal patch")
        self.add_ok_button = QPushButton("Add OK images to model…")
        self.add_ok_button.setToolTip("Add the images labelled OK that the list shows (set its filters, e.g. "
                                      "OK + disagrees with model) to the active model without retraining; "
                                      "a new model version")
        buttons = QHBoxLayout()
        buttons.addWidget(self.worst_button)
        layout = QVBoxLayout(self)
        layout.addLayout(pictures)
        layout.addWidget(self.caption)
        layout.addLayout(buttons)
        layout.addWidget(self.add_ok_button)

    def show_evidence(self, images: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self._set_picture(self.test_view, images.get("test_patch"))
        self._set_picture(self.normal_view, images.get("normal_patch"))
        nearest = info.get("nearest_normal") or {}
        where = "source not recorded"
        if nearest.get("path"):
            where = f"{Path(nearest['path']).name} (train #{nearest['train_index']})"
            if nearest.get("x") is not None:
                where += f" at x={nearest['x']}, y={nearest['y']}"
        lines = [f"<b>{info['chosen_by']}</b> x={info['x']}, y={info['y']}",
                 f"distance <b>{info['distance']:.4g}</b> to the nearest normal patch:", where]
        lines += [f"<i>{note}</i>" for note in info.get("notes", [])]
        self.caption.setText("<br>".join(lines))

    def show_message(self, text: str) -> None:
        self.test_view.clear()
        self.normal_view.clear()
        self.caption.setText(text)

    @staticmethod
    def _set_picture(view: QLabel, rgb: np.ndarray | None) -> None:
        if rgb is None:
            view.clear()
            view.setText("not available")
            return
        pixmap = QPixmap.fromImage(rgb_to_qimage(np.ascontiguousarray(rgb)))
        view.setPixmap(pixmap.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                     Qt.TransformationMode.SmoothTransformation))


# ----------------------------------------------------------------------------- jobs (worker side)
def explain_job(model_dir: Path, model: Any, image_path: Path, xy: tuple[float, float] | None, *,
                progress: ProgressCallback | None = None, cancel: CancelToken) -> tuple[Any, dict, dict]:
    """Load the model unless given, then the nearest normal patch; hands the model back for reuse."""
    from workbench.core.evidence import explain_image
    from workbench.core.methods.package import load_model

    report = make_reporter(progress, "Evidence", 0)
    if model is None:
        report(0, "loading the model")
        model = load_model(model_dir, device="cpu")
    cancel.raise_if_cancelled()
    images, info = explain_image(model, image_path, xy)
    return model, images, info


def add_ok_job(model_dir: Path, paths: list[Path], *, progress: ProgressCallback | None = None,
               cancel: CancelToken):
    from workbench.core.model_update import update_model

    return update_model(model_dir, paths, device="cpu", progress=progress, cancel=cancel)


# ----------------------------------------------------------------------------- controller
class EvidenceController(QObject):
    """Connects the review panel (viewer clicks, current image, labels) to the evidence box."""

    def __init__(self, panel: Any, box: EvidenceBox) -> None:
        super().__init__(panel)
        self.panel, self.box = panel, box
        self.worker: Worker | None = None
        self._model_dir: Path | None = None
        self._model: Any = None
        panel.viewer.pointClicked.connect(self.explain_at)
        box.worst_button.clicked.connect(lambda: self.explain_at(None, None))
        box.add_ok_button.clicked.connect(lambda: self.add_ok_images())
        panel.session.activeModelChanged.connect(lambda _m: self.refresh())
        panel.table.selectionModel().currentRowChanged.connect(lambda *_: self._image_changed())
        self.refresh()

    def _image_changed(self) -> None:
        if self.box.worst_button.isEnabled():
            self.box.show_message("Click the heat map to see the nearest normal patch of that spot.")

    # ------------------------------------------------------------------ state
    def _active(self) -> tuple[Any, str | None]:
        model = self.panel.session.active_model
        return model, (model.method if model is not None else None)

    def refresh(self) -> None:
        """Enable what the active model supports and say why not otherwise."""
        model, method = self._active()
        self.box.worst_button.setEnabled(method in EVIDENCE_METHODS)
        self.box.add_ok_button.setEnabled(method in UPDATABLE_METHODS)
        if model is None:
            self.box.show_message("Select a trained model to see evidence.")
        elif method not in EVIDENCE_METHODS:
            self.box.show_message(f"Nearest-normal-patch evidence needs PatchCore or SPADE; this model is "
                                  f"{method}. ('workbench explain' shows per-stage maps for PaDiM and DFM.)")
        if model is not None and Path(model.path) != self._model_dir:
            self._model_dir, self._model = Path(model.path), None

    # ------------------------------------------------------------------ evidence
    def explain_at(self, x: float | None, y: float | None) -> Worker | None:
        self.refresh()
        model, method = self._active()
        item = self.panel._current_item()
        if model is None or method not in EVIDENCE_METHODS or item is None:
            return None
        if self.worker is not None and self.worker.state in ("pending", "running"):
            self.worker.cancel()
        xy = None if x is None else (float(x), float(y))
        self.box.show_message("Finding the nearest normal patch…")
        worker = Worker(explain_job, Path(model.path), self._model, Path(item.record.path), xy)
        key = item.key
        worker.finished.connect(lambda result, k=key, d=Path(model.path): self._on_evidence(result, k, d))
        worker.failed.connect(lambda msg, _details: self.box.show_message(f"No evidence: {msg}"))
        self.worker = self.panel.session.jobs.start(worker, f"Evidence for {item.record.path.name}",
                                                    show_errors=False)
        return self.worker

    def _on_evidence(self, result: tuple[Any, dict, dict], key: str, model_dir: Path) -> None:
        model, images, info = result
        if model_dir == self._model_dir:
            self._model = model
        if key != self.panel.current_key:
            return  # the user moved on
        self.box.show_evidence(images, info)

    # ------------------------------------------------------------------ incremental update
    def ok_paths(self) -> list[Path]:
        """The images the user labelled OK among those the list shows: the list's filters are the
        selection (e.g. verdict OK + "disagrees with model" = the reviewed false alarms)."""
        panel = self.panel
        shown = [panel.model.item(panel.proxy.mapToSource(panel.proxy.index(r, 0)).row())
                 for r in range(panel.proxy.rowCount())]
        return [Path(it.record.path) for it in shown
                if it.record.split != "train" and (panel.model.label(it.key) or {}).get("verdict") == "OK"]

    def add_ok_images(self, confirm: bool = True) -> Worker | None:
        model, method = self._active()
        if model is None or method not in UPDATABLE_METHODS:
            return None
        paths = self.ok_paths()
        if not paths:
            QMessageBox.information(self.panel, "Add OK images", "Label some images OK (key 1) first.")
            return None
        if confirm and QMessageBox.question(
                self.panel, "Add OK images to model",
                f"Add {len(paths)} image(s) labelled OK to '{model.name}'? The model gets a new version "
                "(the current one is kept under versions/) and its thresholds should be re-checked.") \
                != QMessageBox.StandardButton.Yes:
            return None
        worker = Worker(add_ok_job, Path(model.path), paths)
        worker.finished.connect(self._on_updated)
        return self.panel.session.jobs.start(worker, f"Add {len(paths)} OK image(s) to {model.name}")

    def _on_updated(self, outcome) -> None:
        from workbench.core.run_record import sync_to_workspace

        self._model = None  # the package changed
        panel = self.panel
        model = panel.session.active_model
        if panel.session.workspace is not None and model is not None:
            sync_to_workspace(panel.session.workspace, model.id, model.path)
        panel.predictions = None  # its scores are stale: reload from the new version
        panel._on_active_model_changed(panel.session.active_model)
        panel.session.notify_models_changed()
        self.box.show_message(f"Model version {outcome.version}: {len(outcome.added)} OK image(s) added in "
                              f"{outcome.seconds:.1f} s. Re-check the thresholds in the Threshold step.")
