"""The review panel's jobs, run in a :class:`~workbench.gui.workers.Worker`.

Orchestration only (core calls in order); they never touch a widget or the workspace
database: the panel stores results in the GUI thread once a job finished. (QImages are
plain values off the GUI thread, so a job may hand back an image ready to show.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtGui import QImage

from workbench.core.data import Dataset, read_image
from workbench.core.evaluation import EvalResult
from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.labels import (
    ExchangeReport, ImportedLabel, evaluate_reviewed, export_coco, export_mvtec, read_coco_labels, read_mvtec_labels,
)
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.package import load_model, read_metadata
from workbench.gui.pipelines import cached_evaluation  # predicts in the job's child process when needed
from workbench.core.visualize import heat_overlay
from workbench.gui.imaging import resize_to, rgb_to_qimage
from workbench.gui.widgets.review_frames import MapSettings


@dataclass
class Predictions:
    model_dir: Path
    result: EvalResult
    metadata: dict[str, Any]


def load_predictions(model_dir: Path, dataset: Dataset, *, progress: ProgressCallback | None = None,
                     cancel: CancelToken) -> Predictions:
    """The active model's scores and maps on the test split (cached in the model folder)."""
    metadata = read_metadata(model_dir)
    result = cached_evaluation(model_dir, dataset, progress=progress, cancel=cancel)
    return Predictions(Path(model_dir), result, metadata)


def export_labels(fmt: str, dataset: Dataset, labels: dict, labels_dir: Path, out: Path,
                  classes: list[str] | None = None, *, progress: ProgressCallback | None = None,
                  cancel: CancelToken) -> ExchangeReport:
    cancel.raise_if_cancelled()
    make_reporter(progress, f"Exporting {fmt.upper()}", 0)(0, str(out))
    if fmt == "mvtec":
        return export_mvtec(dataset, labels, labels_dir, out)
    if fmt == "coco":
        return export_coco(dataset, labels, labels_dir, out, classes)
    raise ValueError(f"Unknown export format '{fmt}': use 'mvtec' or 'coco'.")


def import_labels(source: Path, dataset: Dataset, *, progress: ProgressCallback | None = None,
                  cancel: CancelToken) -> tuple[list[ImportedLabel], ExchangeReport]:
    """A folder is read as MVTec layout, a .json file as COCO."""
    cancel.raise_if_cancelled()
    make_reporter(progress, "Reading labels", 0)(0, str(source))
    source = Path(source)
    if source.is_dir():
        return read_mvtec_labels(source, dataset)
    return read_coco_labels(source, dataset)


def reviewed_metrics(result: EvalResult, labels: dict, labels_dir: Path, root: Path, *,
                     progress: ProgressCallback | None = None, cancel: CancelToken):
    make_reporter(progress, "Evaluating with reviewed labels", 0)(0)
    return evaluate_reviewed(result, labels, labels_dir, root, cancel=cancel)


# ----------------------------------------------------------------------------- reconstruction
def reconstruction_support(method: str | None) -> tuple[bool, str]:
    """(supported, why not): can models of ``method`` show their reconstruction?

    A class check through the registry, so the review panel knows before loading the model.
    """
    from workbench.core.methods.components.reconstruction import ReconstructionModel
    from workbench.core.methods.registry import METHODS, get_method

    names = ", ".join(n for n, c in METHODS.items() if issubclass(c, ReconstructionModel))
    if not method:
        return False, f"Select a trained reconstruction model ({names}) to compare input and reconstruction."
    try:
        cls = get_method(method)
    except ValueError:
        return False, f"Unknown method '{method}'."
    if issubclass(cls, ReconstructionModel) or callable(getattr(cls, "reconstruct", None)):
        return True, ""
    title = getattr(cls, "title", method)
    return False, (f"{title} does not reconstruct the image (it compares features), so there is nothing to show "
                   f"here. Only reconstruction methods have this view: {names}.")


@dataclass
class Reconstruction:
    """One image's reconstruction at the image's own size, ready to show."""

    model_dir: Path
    key: str
    rgb: np.ndarray  # RGB uint8 (H, W, 3), resized from the model's image_size
    image: QImage  # the same as RGB32
    model: AnomalyModel  # the loaded model, handed back so the next image needs no reload
    heat: QImage | None = None  # the coloured map when the predictions had none (e.g. train split)


def reconstruct_image(model_dir: Path, model: AnomalyModel | None, key: str, image_path: Path,
                      settings: MapSettings | None, need_map: bool, *, progress: ProgressCallback | None = None,
                      cancel: CancelToken) -> Reconstruction:
    """Load the model unless given, reconstruct one image and resize it to the image's size.

    With ``need_map`` the model's anomaly map is computed too and coloured with ``settings``
    (the dataset-wide scale the overlay uses), for images the cached predictions do not cover.
    """
    report = make_reporter(progress, "Reconstructing", 0)
    if model is None:
        report(0, "loading the model")
        model = load_model(model_dir)
    if not callable(getattr(model, "reconstruct", None)):
        raise ValueError(f"{model.title} does not reconstruct images.")
    cancel.raise_if_cancelled()
    report(0, Path(image_path).name)
    image = read_image(image_path)
    rgb = resize_to(model.reconstruct([image])[0], image.shape[:2])
    heat = None
    if need_map and settings is not None:
        amap = model.predict([image], cancel=cancel)[1][0]
        heat = rgb_to_qimage(heat_overlay(image, settings.scale.normalize(amap), alpha=1.0,
                                          colormap=settings.colormap)).convertToFormat(QImage.Format.Format_RGB32)
    cancel.raise_if_cancelled()
    return Reconstruction(Path(model_dir), key, rgb, rgb_to_qimage(rgb).convertToFormat(QImage.Format.Format_RGB32),
                          model, heat)
