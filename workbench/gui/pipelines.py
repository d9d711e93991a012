"""The GUI's jobs: sequences of core calls run inside a :class:`~workbench.gui.workers.Worker`.

No algorithm lives here, only orchestration in the order the GUI needs it. Every function
takes ``progress`` and ``cancel`` keywords (the worker passes them) and never touches a
widget or writes to the workspace database: the GUI thread registers results after a
job finished, so a cancelled or failed job leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.data import Dataset, DatasetError, ImageReadError, load_dataset, read_image
from workbench.core.data.io import list_images
from workbench.core.evaluation import evaluate_model
from workbench.core.jobs import CancelToken, ProgressCallback, ProgressEvent, make_reporter
from workbench.core.methods.package import load_model, save_model
from workbench.core.training import train_model


def staged(progress: ProgressCallback | None, prefix: str) -> ProgressCallback:
    """Prefix stage names ("Training · extract features") so the user knows which phase a
    core stage such as "predict" belongs to."""

    def report(event: ProgressEvent) -> None:
        if progress is not None:
            progress(dataclasses.replace(event, stage=f"{prefix} · {event.stage}"))

    return report


# ----------------------------------------------------------------------------- import
@dataclass
class ImportOutcome:
    root: Path
    layout: str
    datasets: list[tuple[str | None, Dataset]] = field(default_factory=list)  # (category, dataset)
    errors: list[tuple[str | None, str]] = field(default_factory=list)


def import_datasets(root: str | Path, layout: str = "auto", categories: list[str | None] | None = None, *,
                    progress: ProgressCallback | None = None, cancel: CancelToken) -> ImportOutcome:
    """Import one or several categories of ``root``. A category that fails is reported, not
    fatal, so one broken folder does not stop "import all"; if every one fails, raise."""
    cats = categories or [None]
    report = make_reporter(progress, "Importing", len(cats))
    outcome = ImportOutcome(Path(root), layout)
    for i, category in enumerate(cats):
        cancel.raise_if_cancelled()
        report(i, f"reading {category or Path(root).name}")
        try:
            outcome.datasets.append((category, load_dataset(root, category=category, layout=layout)))
        except DatasetError as exc:
            outcome.errors.append((category, str(exc)))
    report(len(cats))
    if not outcome.datasets:
        raise DatasetError("\n\n".join(msg for _, msg in outcome.errors))
    return outcome


def load_one_dataset(root: str | Path, category: str | None, layout: str, *,
                     progress: ProgressCallback | None = None, cancel: CancelToken) -> Dataset:
    """Re-import a registered dataset (switching datasets re-reads the folder)."""
    cancel.raise_if_cancelled()
    make_reporter(progress, "Loading dataset", 0)(0, str(root))
    return load_dataset(root, category=category, layout=layout)


# ----------------------------------------------------------------------------- training
@dataclass
class TrainingOutcome:
    method: str
    params: dict[str, Any]
    model_dir: Path
    fit_seconds: float
    n_train: int
    n_holdout: int
    metrics: dict[str, Any]


def train_evaluate_save(dataset: Dataset, method: str, params: dict[str, Any], model_dir: Path,
                        device: Any = None, *, progress: ProgressCallback | None = None,
                        cancel: CancelToken) -> TrainingOutcome:
    """Train, evaluate on the test split, then save the package to ``model_dir``.

    Saving comes last on purpose: a cancel at any step before it leaves no files, and the
    save itself is atomic (core ``save_model``), so a model folder is complete or absent.
    """
    result = train_model(dataset, method, params, device=device,
                         progress=staged(progress, "Training"), cancel=cancel)
    metrics: dict[str, Any] = {}
    if dataset.test:
        evaluation = evaluate_model(result.model, dataset, staged(progress, "Evaluating"), cancel)
        metrics = evaluation.metrics()
    cancel.raise_if_cancelled()
    make_reporter(progress, "Saving model", 1)(0, str(model_dir))
    existed = model_dir.exists()
    try:
        save_model(result.model, model_dir)  # a fresh folder: never replaces anything
    except BaseException:
        if not existed:  # never delete a folder this call did not create
            shutil.rmtree(model_dir, ignore_errors=True)
        raise
    make_reporter(progress, "Saving model", 1)(1)
    return TrainingOutcome(method, dict(result.model.params), model_dir, result.fit_seconds,
                           result.n_train, result.n_holdout, metrics)


# ----------------------------------------------------------------------------- inference
@dataclass
class InferenceSummary:
    model_dir: Path
    source: str
    paths: list[Path]
    scores: np.ndarray
    threshold: float | None
    seconds: float
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def n_ng(self) -> int:
        return 0 if self.threshold is None else int((self.scores >= self.threshold).sum())

    @property
    def ms_per_image(self) -> float:
        return 1000.0 * self.seconds / max(1, len(self.paths))

    def text(self) -> str:
        """A few lines for the panel: counts, decision rule, speed and the worst images."""
        lines = [f"Scored {len(self.paths)} image(s) from {self.source} in {self.seconds:.1f} s "
                 f"({self.ms_per_image:.1f} ms/img)."]
        if self.threshold is None:
            lines.append("The model has no threshold yet: calibrate one in the Threshold step.")
        else:
            lines.append(f"{self.n_ng} NG / {len(self.paths) - self.n_ng} OK at the model's "
                         f"provisional threshold {self.threshold:.4g}.")
        if len(self.scores):
            lines.append(f"Scores: min {self.scores.min():.4g}, median {np.median(self.scores):.4g}, "
                         f"max {self.scores.max():.4g}.")
            worst = np.argsort(self.scores)[::-1][:5]
            lines.append("Highest: " + ", ".join(f"{self.paths[i].name} ({self.scores[i]:.4g})" for i in worst))
        if self.skipped:
            lines.append(f"{len(self.skipped)} unreadable file(s) skipped.")
        return "\n".join(lines)


def inference_paths(folder: str | Path) -> list[Path]:
    """Every image under ``folder`` (recursively), in a stable order."""
    return list_images(Path(folder), recursive=True)


def run_inference(model_dir: Path, images: list[Path] | str | Path, source: str, device: Any = None, *,
                  progress: ProgressCallback | None = None, cancel: CancelToken) -> InferenceSummary:
    """Load a saved model and score ``images`` (a list of files, or a folder searched
    recursively) in batches, keeping only the scores: maps of a large folder would not fit
    in memory. Unreadable files are skipped and listed rather than failing the whole run."""
    paths = list(images) if isinstance(images, list) else inference_paths(images)
    if not paths:
        raise ValueError(f"No images to score in {source}.")
    model = load_model(model_dir, device=device)
    chunk_size = max(1, int(model.params.get("batch_size", 8))) * 4
    report = make_reporter(progress, "Inference", len(paths))
    scored: list[Path] = []
    scores: list[np.ndarray] = []
    skipped: list[tuple[Path, str]] = []
    start = time.perf_counter()
    for first in range(0, len(paths), chunk_size):
        cancel.raise_if_cancelled()
        images, chunk_paths = [], []
        for path in paths[first:first + chunk_size]:
            try:
                images.append(read_image(path))
                chunk_paths.append(path)
            except ImageReadError as exc:
                skipped.append((path, exc.reason))
        if images:
            chunk_scores, _maps = model.predict(images, None, cancel)
            scores.append(chunk_scores)
            scored.extend(chunk_paths)
        report(min(first + chunk_size, len(paths)))
    if not scored:
        raise ValueError(f"None of the {len(paths)} file(s) in {source} could be read.")
    seconds = time.perf_counter() - start
    threshold = model.metadata.get("thresholds", {}).get("image", {}).get("value")
    return InferenceSummary(model_dir, source, scored, np.concatenate(scores), threshold, seconds, skipped)
