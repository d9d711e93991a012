"""The review panel's jobs, run in a :class:`~workbench.gui.workers.Worker`.

Orchestration only (core calls in order); they never touch a widget or the workspace
database: the panel stores results in the GUI thread once a job finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.core.data import Dataset
from workbench.core.evaluation import EvalResult
from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.labels import (
    ExchangeReport, ImportedLabel, evaluate_reviewed, export_coco, export_mvtec, read_coco_labels, read_mvtec_labels,
)
from workbench.core.methods.package import read_metadata
from workbench.core.predictions import evaluation_for


@dataclass
class Predictions:
    model_dir: Path
    result: EvalResult
    metadata: dict[str, Any]


def load_predictions(model_dir: Path, dataset: Dataset, *, progress: ProgressCallback | None = None,
                     cancel: CancelToken) -> Predictions:
    """The active model's scores and maps on the test split (cached in the model folder)."""
    metadata = read_metadata(model_dir)
    result = evaluation_for(model_dir, dataset, progress=progress, cancel=cancel)
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
