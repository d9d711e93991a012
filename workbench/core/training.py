"""Training orchestration: dataset -> fitted model with score statistics.

Besides calling ``fit``, training holds back a few good images (or uses the dataset's
``val`` split) and scores them. Their statistics give a per-dataset normalisation for heat
maps (field notes: per-image normalisation makes every good image look red) and a
provisional threshold until the engineer calibrates one on labelled data.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
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
from workbench.core.tiling import TiledImages, TilingSpec


HOLDOUT_FRACTION = 0.1  # of the good training images, when the dataset has no 'val' split


@dataclass(frozen=True)
class TrainingSplit:
    """Which good images a training fits on and which it holds out to measure good-score
    statistics (heat-map normalisation, the provisional threshold). ``from_val``: the held-out
    images are the dataset's own 'val' split rather than a slice of the training images."""

    fit: list[ImageRecord]
    holdout: list[ImageRecord]
    from_val: bool


@dataclass
class TrainResult:
    model: AnomalyModel
    fit_seconds: float
    n_train: int
    n_holdout: int
    n_excluded: int = 0   # good training images left out because the user excluded them (audit)
    n_tiles: int = 0      # training tiles, when the model tiles large images
    record: dict[str, Any] | None = None  # the run record (core.run_record), saved with the package


def _path_key(path: str | Path) -> str:
    return os.path.normcase(os.path.abspath(os.fspath(path)))


def drop_excluded(records: list[ImageRecord], excluded: Collection[str | Path]) -> tuple[list[ImageRecord], int]:
    """``records`` without the images the user excluded from training (by absolute path)."""
    if not excluded:
        return records, 0
    keys = {_path_key(p) for p in excluded}
    kept = [r for r in records if _path_key(r.path) not in keys]
    return kept, len(records) - len(kept)


def split_holdout(records: list[ImageRecord], fraction: float, seed: int) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Deterministically hold back ``fraction`` of good training images (none below 10 images)."""
    n_hold = int(round(len(records) * fraction)) if len(records) >= 10 else 0
    if n_hold == 0:
        return records, []
    order = np.random.default_rng(seed).permutation(len(records))
    hold = set(order[:n_hold].tolist())
    return ([r for i, r in enumerate(records) if i not in hold],
            [r for i, r in enumerate(records) if i in hold])


def training_split(dataset: Dataset, seed: int = 0, holdout_fraction: float = HOLDOUT_FRACTION,
                   excluded: Collection[str | Path] = ()) -> TrainingSplit:
    """The split :func:`train_model` uses: the dataset's good 'val' images when it has some,
    else a seeded ``holdout_fraction`` of the good training images (none below 10 images);
    images the user ``excluded`` are left out of both. The GUI shows the counts from here, so
    what it says is what training does."""
    goods, _ = drop_excluded(list(dataset.train), excluded)
    val_goods = [r for r in dataset.split("val") if r.is_good]
    if val_goods:
        return TrainingSplit(goods, val_goods, True)
    fit, holdout = split_holdout(goods, holdout_fraction, seed)
    return TrainingSplit(fit, holdout, False)


def train_model(dataset: Dataset, method: str, params: dict[str, Any] | None = None, device=None,
                holdout_fraction: float = HOLDOUT_FRACTION, progress: ProgressCallback | None = None,
                cancel: CancelToken | None = None, *, excluded: Collection[str | Path] = (),
                tiling: TilingSpec | None = None) -> TrainResult:
    """Fit ``method`` on the good training images of ``dataset`` and record score statistics.

    ``excluded``: image paths the user took out of training (e.g. after ``workbench audit``);
    they are skipped, never deleted, and counted in the result. ``tiling``: train on the
    overlapping tiles of the good images and store the setting in the model, so that
    prediction (torch and exported ONNX alike) tiles the same way.
    """
    model = create_method(method, device=device, **(params or {}))
    goods, n_excluded = drop_excluded(dataset.train, excluded)
    if not goods:
        more = f" ({n_excluded} excluded from training by the user)" if n_excluded else ""
        raise ValueError(f"Dataset '{dataset.name}' has no good training images{more} ({dataset.root}). "
                         "An unsupervised method needs good images to learn from: put them in train/good"
                         + (" or include some excluded images again." if n_excluded else "."))
    split = training_split(dataset, int(model.params["seed"]), holdout_fraction, excluded)
    train_recs, hold_recs = split.fit, split.holdout
    hash_start = time.perf_counter()
    files = file_entries([Path(r.path).resolve() for r in train_recs])  # absolute paths: evidence reads them back
    hash_seconds = time.perf_counter() - hash_start
    start = time.perf_counter()
    paths = [r.path for r in train_recs]
    images = TiledImages(paths, tiling) if tiling is not None else LazyImages(paths)
    model.fit(images, progress, cancel)
    fit_seconds = time.perf_counter() - start
    if tiling is not None:  # from now on predict tiles (the held-out images below, and every later use)
        model.metadata["tiling"] = tiling.to_json()
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
        "n_train": len(train_recs), "n_holdout": len(hold_recs), "n_excluded": n_excluded,
        "fit_seconds": round(fit_seconds, 3), "device": str(model.device),
    }
    n_tiles = len(images) if tiling is not None else 0
    if tiling is not None:
        model.metadata["training"]["n_tiles"] = n_tiles
    record = new_record(
        "train", method=model.name, params=model.params, device=model.device,
        dataset={**dataset_entry(dataset, files),
                 "holdout": [Path(r.path).name for r in hold_recs]},
        timings={"hash_files": hash_seconds, "fit": fit_seconds, "holdout_predict": holdout_seconds},
        metrics={"holdout_scores": model.metadata.get("score_stats", {}).get("image", {})})
    return TrainResult(model, fit_seconds, len(train_recs), len(hold_recs), n_excluded, n_tiles, record)


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
