"""The GUI's jobs: sequences of core calls run inside a :class:`~workbench.gui.workers.Worker`.

No algorithm and no inference loop lives here: training, folder prediction and evaluation are
the core's workflows (:mod:`workbench.core.workflows`, the same ones the CLI runs). Every function
takes ``progress`` and ``cancel`` keywords (the worker passes them) and never touches a
widget or writes to the workspace database: the GUI thread registers results after a
job finished, so a cancelled or failed job leaves nothing behind.

Which jobs compute in a child process (``process_job``, see :mod:`workbench.gui.workers`):
training (:func:`train_evaluate_save`), folder inference (:func:`run_inference`) and the test
split's prediction behind the Threshold and Review steps (:func:`compute_predictions`, through
:func:`cached_evaluation`). Their results are small (numbers, paths, decisions); the large
ones (maps) are files the child writes (the model's prediction cache) and the caller reads.
Importing and loading datasets stay in the worker thread: they read folder listings in well
under the 3-5 s a child would take to start. No Qt import here: a child imports this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.calibration.policy import InspectionPolicy
from workbench.core.data import Dataset, DatasetError, load_dataset
from workbench.core.data.io import list_images
from workbench.core.evaluation import EvalResult
from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.predictions import evaluation_for, load_predictions
from workbench.core.process_jobs import active_options, call, process_job
from workbench.core.workflows import FolderPrediction, TrainingOutcome, expand_images, predict_images, staged
from workbench.core.workflows import train_evaluate_save as _train_evaluate_save

train_evaluate_save = process_job(_train_evaluate_save)  # the core workflow, run in a child by the GUI


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


# ----------------------------------------------------------------------------- inference
@dataclass
class InferenceSummary:
    """A folder run for the panel: the core's :class:`FolderPrediction` and where it came from."""

    model_dir: Path
    source: str
    result: FolderPrediction
    unsaved: bool = False  # decided with the Threshold step's policy before it was saved

    paths = property(lambda self: self.result.paths)
    scores = property(lambda self: self.result.scores)
    decisions = property(lambda self: self.result.decisions)
    seconds = property(lambda self: self.result.seconds)
    skipped = property(lambda self: self.result.skipped)
    n_ng = property(lambda self: self.result.n_ng)
    n_review = property(lambda self: self.result.n_review)
    threshold = property(lambda self: self.result.policy.ng_threshold)
    ok_threshold = property(lambda self: self.result.policy.ok_threshold)
    csv_path = property(lambda self: self.result.summary.csv_path)

    policy = property(lambda self: self.result.policy)
    overlays = property(lambda self: self.result.overlays)
    rows = property(lambda self: self.result.rows)

    def policy_text(self) -> str:
        """Which policy decided, in words: saved or not, provisional or calibrated."""
        policy = self.result.policy
        if policy.ng_threshold is None:
            return "no threshold yet (calibrate one in the Threshold step)"
        band = "" if policy.ok_threshold is None else f", OK below {policy.ok_threshold:.4g}"
        rule = f"NG from {policy.ng_threshold:.4g}{band}"
        if self.unsaved:
            return f"the Threshold step's policy as on screen, not saved yet ({rule})"
        if is_provisional(policy):
            return f"the provisional threshold of training, no calibration saved yet ({rule})"
        return f"the model's saved calibration ({rule})"

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
            n_ok = self.decisions.count("OK")
            band = "" if self.ok_threshold is None else f", {self.n_review} REVIEW"
            lines.append(f"{self.n_ng} NG{band} / {n_ok} OK at {self.policy_text()}.")
        if len(self.scores):
            lines.append(f"Scores: min {np.nanmin(self.scores):.4g}, median {np.nanmedian(self.scores):.4g}, "
                         f"max {np.nanmax(self.scores):.4g}.")
            worst = np.argsort(np.nan_to_num(self.scores, nan=np.inf))[::-1][:5]
            lines.append("Highest: " + ", ".join(f"{self.paths[i].name} ({self.scores[i]:.4g})" for i in worst))
        if self.csv_path is not None:
            lines.append(f"Decisions per image: {self.csv_path}")
        if self.skipped:
            lines.append(f"{len(self.skipped)} unreadable file(s) skipped.")
        return "\n".join(lines)


def inference_paths(folder: str | Path) -> list[Path]:
    """Every image under ``folder`` (recursively), in a stable order."""
    return list_images(Path(folder), recursive=True)


def is_provisional(policy: InspectionPolicy) -> bool:
    """Whether ``policy`` is the stopgap threshold written at training (no calibration yet)."""
    return "provisional" in (policy.source or "")


@process_job
def run_inference(model_dir: Path, images: list[Path] | str | Path, source: str, device: Any = None, *,
                  policy: InspectionPolicy | None = None, unsaved: bool = False,
                  progress: ProgressCallback | None = None, cancel: CancelToken) -> InferenceSummary:
    """Score ``images`` (a list of files, or a folder searched recursively) with the core's
    streaming folder prediction, deciding with ``policy`` (the Threshold step's, as on screen;
    default: the model's saved one; ``unsaved`` says it is not stored in the model yet).
    Results, heat-map overlays included, go to ``MODEL/inference/<source>/`` (``scores.csv``
    resumed if the same run at the same policy was interrupted)."""
    paths = list(images) if isinstance(images, list) else inference_paths(images)
    if not paths:
        raise ValueError(f"No images to score in {source}.")
    items = expand_images(paths)
    out_dir = Path(model_dir) / "inference" / hashlib.sha1(source.encode()).hexdigest()[:12]
    result = predict_images(model_dir, items, out_dir, policy=policy, overlays=True, resume=True,
                            restart_on_mismatch=True, device=device, progress=staged(progress, "Inference"),
                            cancel=cancel)
    if not result.paths:
        raise ValueError(f"None of the {len(paths)} file(s) in {source} could be read.")
    return InferenceSummary(Path(model_dir), source, result, unsaved=bool(unsaved and policy is not None))


# ----------------------------------------------------------------------------- predictions of the test split
@process_job
def compute_predictions(model_dir: str | Path, dataset: Dataset, device: Any = None, *,
                        progress: ProgressCallback | None = None, cancel: CancelToken) -> None:
    """Predict ``dataset``'s test split and store it in the model's prediction cache. Returns
    nothing: the scores and maps (megabytes) stay in the cache file for the caller to read."""
    evaluation_for(model_dir, dataset, device=device, progress=progress, cancel=cancel)


def cached_evaluation(model_dir: str | Path, dataset: Dataset, *, progress: ProgressCallback | None = None,
                      cancel: CancelToken) -> EvalResult:
    """The model's evaluation on the test split: from the cache when it is there; otherwise
    predicted by :func:`compute_predictions` (in a child process when the worker runs one, see
    :mod:`workbench.gui.workers`) and read back from the cache it wrote."""
    cached = load_predictions(model_dir, dataset)
    if cached is not None:
        return cached
    if active_options() is None:  # running in this thread: no need to go through the file
        return evaluation_for(model_dir, dataset, progress=progress, cancel=cancel)
    call(compute_predictions, model_dir, dataset, progress=progress, cancel=cancel)
    result = load_predictions(model_dir, dataset)
    if result is None:
        raise RuntimeError(f"The predictions of the model in {model_dir} were computed but could not be read back "
                           "from its prediction cache; check that the model folder is writable and try again.")
    return result


__all__ = ["ImportOutcome", "InferenceSummary", "TrainingOutcome", "cached_evaluation", "compute_predictions",
           "import_datasets", "inference_paths", "load_one_dataset", "run_inference", "train_evaluate_save"]
