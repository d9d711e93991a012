"""Headless workflows shared by the command line and the desktop application.

Each function is one job a user starts (train a model, score a folder, check a model at its
inspection policy); the CLI commands and the GUI panels only call these, so both run the same
sequence of core calls and produce the same files and numbers. No Qt here; every function
takes ``progress`` and ``cancel`` keywords so the GUI can run it in a worker.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.batch_predict import (CSV_FILE, PredictSummary, ResumeMismatchError, model_fingerprint,
                                          overlay_name, predict_folder, read_rows)
from workbench.core.calibration.policy import InspectionPolicy, load_policy
from workbench.core.calibration.thresholds import policy_report, weak_model_warning
from workbench.core.data import Dataset
from workbench.core.evaluation import EvalResult
from workbench.core.jobs import CancelToken, ProgressCallback, ProgressEvent, make_reporter
from workbench.core.results_csv import display_path


def staged(progress: ProgressCallback | None, prefix: str) -> ProgressCallback:
    """Prefix stage names ("Training · extract features") so the user knows which phase a
    core stage such as "predict" belongs to."""

    def report(event: ProgressEvent) -> None:
        if progress is not None:
            progress(dataclasses.replace(event, stage=f"{prefix} · {event.stage}"))

    return report


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
    n_excluded: int = 0  # good training images skipped because the user excluded them


def train_evaluate_save(dataset: Dataset, method: str, params: dict[str, Any], model_dir: Path,
                        device: Any = None, *, progress: ProgressCallback | None = None,
                        cancel: CancelToken | None = None, excluded: Sequence[str | Path] = (),
                        tiling: Any = None) -> TrainingOutcome:
    """Train, evaluate on the test split, save the package to ``model_dir``, then write the
    prediction cache, so the Threshold and Review steps open without predicting again.

    ``excluded`` (images the user excluded from training) and ``tiling`` (a
    :class:`~workbench.core.tiling.TilingSpec`) go to :func:`~workbench.core.training.train_model`.

    Saving comes last on purpose: a cancel at any step before it leaves no files, and the
    save itself is atomic (core ``save_model``), so a model folder is complete or absent.
    """
    from workbench.core.evaluation import evaluate_model
    from workbench.core.methods.package import save_model
    from workbench.core.predictions import save_predictions
    from workbench.core.run_record import save_record
    from workbench.core.training import train_model

    cancel = cancel or CancelToken()
    result = train_model(dataset, method, params, device=device,
                         progress=staged(progress, "Training"), cancel=cancel, excluded=excluded, tiling=tiling)
    metrics: dict[str, Any] = {}
    evaluation: EvalResult | None = None
    if dataset.test:
        evaluation = evaluate_model(result.model, dataset, staged(progress, "Evaluating"), cancel)
        metrics = evaluation.metrics()
    cancel.raise_if_cancelled()
    make_reporter(progress, "Saving model", 1)(0, str(model_dir))
    existed = Path(model_dir).exists()
    try:
        save_model(result.model, model_dir)  # a fresh folder: never replaces anything
        if result.record is not None:
            save_record(model_dir, result.record)
        if evaluation is not None:
            save_predictions(model_dir, dataset, evaluation, derived=True)
            save_record(model_dir, evaluation_record(result.model, dataset, evaluation))
    except BaseException:
        if not existed:  # never delete a folder this call did not create
            shutil.rmtree(model_dir, ignore_errors=True)
        raise
    make_reporter(progress, "Saving model", 1)(1)
    return TrainingOutcome(method, dict(result.model.params), Path(model_dir), result.fit_seconds,
                           result.n_train, result.n_holdout, metrics, result.n_excluded)


def evaluation_record(model: Any, dataset: Dataset, evaluation: EvalResult) -> dict[str, Any]:
    """The run record of an evaluation on ``dataset``'s test split (files hashed, metrics)."""
    from workbench.core.run_record import dataset_entry, file_entries, new_record

    files = file_entries([Path(r.path).resolve() for r in evaluation.records])
    return new_record("evaluate", method=model.name, params=model.params, device=model.device,
                      dataset=dataset_entry(dataset, files, split="test"),
                      timings={"predict": evaluation.ms_per_image * len(evaluation.records) / 1000.0},
                      metrics=evaluation.metrics())


# ----------------------------------------------------------------------------- folder prediction
def load_scorer(model_dir: str | Path, device: Any = None):
    """A training package (torch) or an exported folder (onnxruntime), by what the folder holds."""
    from workbench.core.export.runtime import OnnxInferencer, is_exported_package

    if is_exported_package(model_dir):
        return OnnxInferencer(model_dir)  # torch-free: the Inspector bundle has no torch
    from workbench.core.methods.package import load_model

    return load_model(model_dir, device=device)


@dataclass
class FolderPrediction:
    """A finished folder run: the CSV summary plus its rows' scores and decisions."""

    summary: PredictSummary
    policy: InspectionPolicy
    paths: list[Path]
    scores: np.ndarray
    decisions: list[str]
    seconds: float
    skipped: list[str] = field(default_factory=list)  # why each unreadable image of this run was skipped
    rows: list[dict[str, str]] = field(default_factory=list)  # the scores.csv row of each image in paths
    overlays: list[Path | None] = field(default_factory=list)  # its heat-map overlay PNG (None: not written)

    @property
    def n_ng(self) -> int:
        return self.decisions.count("NG")

    @property
    def n_review(self) -> int:
        return self.decisions.count("REVIEW")


def predict_images(model_dir: str | Path, items: Sequence[tuple[Path, str]], out_dir: str | Path, *,
                   policy: InspectionPolicy | None = None, threshold: float | None = None, overlays: bool = True,
                   resume: bool = True, restart_on_mismatch: bool = False, batch_size: int | None = None,
                   device: Any = None, scorer: Any = None, progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None,
                   inputs: Sequence[tuple[str, str | Path]] = (), backend: Any = None) -> FolderPrediction:
    """Score ``items`` (path, unique output stem) with the model in ``model_dir`` at its
    inspection policy (or ``policy``), streaming into ``out_dir/scores.csv`` (resumable).
    ``backend`` (``core.cluster.make_backend``) scores the batches in worker processes or on a
    Ray cluster; the CSV is the same.
    ``out_dir`` may be none of ``inputs`` (the model, image folders), nor inside one."""
    start = time.perf_counter()
    scorer = scorer if scorer is not None else load_scorer(model_dir, device)
    policy = policy if policy is not None else load_policy(model_dir)
    kwargs = dict(fingerprint=model_fingerprint(model_dir), threshold=threshold, policy=policy, overlays=overlays,
                  batch_size=batch_size, progress=progress, cancel=cancel, inputs=inputs, backend=backend)
    try:
        summary = predict_folder(scorer, items, out_dir, resume=resume, **kwargs)
    except ResumeMismatchError:
        if not restart_on_mismatch:
            raise
        summary = predict_folder(scorer, items, out_dir, resume=False, **kwargs)
    rows = read_rows(Path(out_dir) / CSV_FILE)
    scored = [r for r in rows if r["decision"] != "unreadable"]
    wanted = {display_path(p): (p, stem) for p, stem in items}
    scored = [r for r in scored if r["path"] in wanted]
    overlay_files = [Path(out_dir) / overlay_name(wanted[r["path"]][1]) for r in scored]
    return FolderPrediction(summary, policy, [wanted[r["path"]][0] for r in scored],
                            np.array([float(r["score"]) if r["score"] else np.nan for r in scored], np.float64),
                            [r["decision"] for r in scored], time.perf_counter() - start, list(summary.problems),
                            rows=scored, overlays=[f if overlays and f.is_file() else None for f in overlay_files])


def expand_images(items: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """Image files named directly or found in folders (recursively), each with a unique output
    stem (the path inside its folder, '/' -> '__'), so test/good/000.png and
    test/hole/000.png do not overwrite each other's overlays."""
    from workbench.core.data.io import IMAGE_SUFFIXES, real_folder_key

    found: list[tuple[Path, str]] = []
    seen: set[tuple[Path, str]] = set()

    def first_time(p: Path) -> bool:  # a link to a folder already given must not count its images twice
        real = real_folder_key(p)
        if real in seen:
            return False
        seen.add(real)
        return True

    for item in items:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise ValueError(f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in folder {path}")
            files = [p for p in files if first_time(p)]
            found.extend((p, p.relative_to(path).with_suffix("").as_posix().replace("/", "__")) for p in files)
        elif path.is_file():
            if first_time(path):
                found.append((path, path.stem))
        else:
            raise ValueError(f"Image or folder not found: {path}")
    # Same names (a.png next to a.jpg, or a.png in two folders given): make each output name
    # unique, so that no overlay overwrites another.
    clashes = Counter(stem for _, stem in found)
    unique: list[tuple[Path, str]] = []
    used: set[str] = set()
    for p, stem in found:
        name = base = stem if clashes[stem] == 1 else f"{stem}_{p.suffix.lstrip('.').lower()}"
        n = 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        unique.append((p, name))
    return unique


# ----------------------------------------------------------------------------- evaluation at the policy
@dataclass
class PolicyEvaluation:
    """Threshold-free metrics and the decisions at a policy, with exact intervals."""

    evaluation: EvalResult
    policy: InspectionPolicy
    report: dict[str, Any] | None      # None when the policy has no NG threshold
    warning: str | None

    def to_json(self) -> dict[str, Any]:
        return {**self.evaluation.metrics(), "policy": self.policy.to_json(), "at_policy": self.report,
                "warnings": [self.warning] if self.warning else []}


def evaluate_at_policy(model_dir: str | Path, dataset: Dataset, *, policy: InspectionPolicy | None = None,
                       model: Any = None, use_cache: bool = True, device: Any = None,
                       progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> PolicyEvaluation:
    """Evaluate the model on ``dataset``'s test split and decide every image at ``policy``
    (default: the package's). With ``use_cache`` the stored predictions are reused."""
    from workbench.core.evaluation import evaluate_model, evaluate_predictions
    from workbench.core.predictions import evaluation_for

    policy = policy if policy is not None else load_policy(model_dir)
    if use_cache and model is None:
        cached = evaluation_for(model_dir, dataset, device=device, progress=progress, cancel=cancel)
        evaluation = evaluate_predictions(cached.records, cached.scores, cached.maps, cached.predict_seconds,
                                          policy=policy) if policy.has_masks else cached
    else:
        if model is None:
            from workbench.core.methods.package import load_model

            model = load_model(model_dir, device=device)
        evaluation = evaluate_model(model, dataset, progress, cancel, policy=policy)
    return decide_evaluation(evaluation, policy, method=_method_of(model_dir))


def decide_evaluation(evaluation: EvalResult, policy: InspectionPolicy, method: str | None = None) -> PolicyEvaluation:
    """The decisions at ``policy`` for an evaluation already computed with its masks."""
    labels = np.array([r.is_anomalous for r in evaluation.records], bool)
    report = policy_report(labels, policy.verdicts(evaluation.scores)) if policy.ng_threshold is not None else None
    far = (report or {}).get("rates", {}).get("false_alarm_rate")
    warning = weak_model_warning(evaluation.image_auroc, far["estimate"] if far else None, method)
    return PolicyEvaluation(evaluation, policy, report, warning)


def _method_of(model_dir: str | Path) -> str | None:
    from workbench.core.calibration.policy import read_package_metadata

    try:
        return read_package_metadata(model_dir).get("method")
    except ValueError:
        return None


__all__ = ["FolderPrediction", "PolicyEvaluation", "TrainingOutcome", "decide_evaluation", "evaluate_at_policy",
           "evaluation_record",
           "expand_images", "load_scorer", "predict_images", "staged", "train_evaluate_save"]
