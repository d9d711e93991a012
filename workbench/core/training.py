"""Training orchestration: dataset -> fitted model with score statistics.

Besides calling ``fit``, training holds back a few good images (or uses the dataset's
``val`` split) and scores them. Their statistics give a per-dataset normalisation for heat
maps (field notes: per-image normalisation makes every good image look red) and a
provisional threshold until the engineer calibrates one on labelled data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.calibration.policy import apply_policy, provisional_policy
from workbench.core.data import Dataset, ImageRecord
from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods import AnomalyModel, create_method
from workbench.core.methods.images import LazyImages
from workbench.core.run_record import dataset_entry, file_entries, new_record


@dataclass
class TrainResult:
    model: AnomalyModel
    fit_seconds: float
    n_train: int
    n_holdout: int
    record: dict[str, Any] | None = None  # the run record (core.run_record), saved with the package


def split_holdout(records: list[ImageRecord], fraction: float, seed: int) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Deterministically hold back ``fraction`` of good training images (none below 10 images)."""
    n_hold = int(round(len(records) * fraction)) if len(records) >= 10 else 0
    if n_hold == 0:
        return records, []
    order = np.random.default_rng(seed).permutation(len(records))
    hold = set(order[:n_hold].tolist())
    return ([r for i, r in enumerate(records) if i not in hold],
            [r for i, r in enumerate(records) if i in hold])


def train_model(dataset: Dataset, method: str, params: dict[str, Any] | None = None, device=None,
                holdout_fraction: float = 0.1, progress: ProgressCallback | None = None,
                cancel: CancelToken | None = None) -> TrainResult:
    """Fit ``method`` on the good training images of ``dataset`` and record score statistics."""
    model = create_method(method, device=device, **(params or {}))
    goods = dataset.train
    if not goods:
        raise ValueError(f"Dataset '{dataset.name}' has no good training images ({dataset.root}). "
                         "An unsupervised method needs good images to learn from: put them in train/good.")
    val_goods = [r for r in dataset.split("val") if r.is_good]
    if val_goods:
        train_recs, hold_recs = goods, val_goods
    else:
        train_recs, hold_recs = split_holdout(goods, holdout_fraction, int(model.params["seed"]))
    hash_start = time.perf_counter()
    files = file_entries([Path(r.path).resolve() for r in train_recs])  # absolute paths: evidence reads them back
    hash_seconds = time.perf_counter() - hash_start
    start = time.perf_counter()
    model.fit(LazyImages([r.path for r in train_recs]), progress, cancel)
    fit_seconds = time.perf_counter() - start
    model.metadata["training_files"] = files
    holdout_seconds = 0.0
    if hold_recs:
        hold_start = time.perf_counter()
        scores, maps = model.predict(LazyImages([r.path for r in hold_recs]), progress, cancel)
        holdout_seconds = time.perf_counter() - hold_start
        model.metadata["score_stats"] = score_statistics(scores, maps)
        apply_policy(model.metadata, provisional_policy(scores, model.metadata["score_stats"]))
    model.metadata["training"] = {
        "dataset": dataset.name, "root": str(dataset.root), "layout": dataset.layout,
        "n_train": len(train_recs), "n_holdout": len(hold_recs),
        "fit_seconds": round(fit_seconds, 3), "device": str(model.device),
    }
    record = new_record(
        "train", method=model.name, params=model.params, device=model.device,
        dataset={**dataset_entry(dataset, files),
                 "holdout": [Path(r.path).name for r in hold_recs]},
        timings={"hash_files": hash_seconds, "fit": fit_seconds, "holdout_predict": holdout_seconds},
        metrics={"holdout_scores": model.metadata.get("score_stats", {}).get("image", {})})
    return TrainResult(model, fit_seconds, len(train_recs), len(hold_recs), record)


def score_statistics(scores: np.ndarray, maps: np.ndarray) -> dict[str, dict[str, float]]:
    """Quantiles of good-image scores: the basis of map normalisation and provisional thresholds."""
    pixels = maps.reshape(-1)
    if pixels.size > 2_000_000:  # quantiles of a uniform subsample are accurate enough
        pixels = pixels[np.random.default_rng(0).choice(pixels.size, 2_000_000, replace=False)]
    return {
        "image": {"n": int(scores.size), "mean": float(scores.mean()), "std": float(scores.std()),
                  "min": float(scores.min()), "p50": float(np.quantile(scores, 0.5)), "max": float(scores.max())},
        "pixel": {"p01": float(np.quantile(pixels, 0.01)), "p50": float(np.quantile(pixels, 0.5)),
                  "p99": float(np.quantile(pixels, 0.99)), "p999": float(np.quantile(pixels, 0.999)),
                  "max": float(pixels.max())},
    }
