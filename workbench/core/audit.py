"""Training-set hygiene: find defective images hiding among the "good" training images.

An unsupervised model learns whatever its training set shows; a scratched part filed as good
teaches it that scratches are normal. The audit scores every good training image with a
model that did *not* see it: the images are split into K folds (default 5), and for each fold
a model is fitted on the other K-1 folds and scores the held-out one (K fits, not one per
image). A defective image then scores like a defect, while its siblings in the training folds
cannot hide it, unless many images share the same flaw.

Suggested cut-off (why this rule): the out-of-fold scores are mostly of good images with a few
suspects in the upper tail. The cut-off is ``median + 3.5 * 1.4826 * MAD`` of those scores
(the "modified z-score > 3.5" outlier rule of Iglewicz and Hoaglin). Median and MAD ignore up
to half of the images being outliers, so the suspects cannot inflate the cut-off that is
meant to catch them (a mean + 3 sigma rule or the maximum would be dragged up by them), and
unlike a fixed quantile it flags nothing when the set is clean. 1.4826 makes the MAD equal to
the standard deviation for normally distributed scores.

Nothing is deleted: the user excludes images in the workspace (:mod:`.workspace.exclusions`)
and training skips them.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.data import Dataset
from workbench.core.files import (OutputKind, atomic_replace_dir, atomic_write_bytes, atomic_write_json,
                                  check_output_dir, staged_dir)
from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter

DEFAULT_FOLDS = 5
MODIFIED_Z_CUTOFF = 3.5
MAD_TO_SIGMA = 1.4826
DEFAULT_OVERLAYS = 20
CSV_NAME, JSON_NAME, OVERLAY_DIR = "audit.csv", "audit.json", "overlays"


def _is_audit(folder: Path) -> bool:
    try:
        import json

        return "cutoff_rule" in json.loads((folder / JSON_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


#: What ``--out`` of an audit may hold: a new or empty folder, or an earlier audit (replaced whole).
AUDIT_OUTPUT = OutputKind("training-set audit", frozenset({CSV_NAME, JSON_NAME, OVERLAY_DIR}), _is_audit)
RULE = (f"median + {MODIFIED_Z_CUTOFF} x {MAD_TO_SIGMA} x MAD of the out-of-fold scores "
        "(modified z-score > 3.5; robust to the suspects themselves)")


@dataclass
class AuditEntry:
    """One training image: its out-of-fold score, robust z, the fold that held it out."""

    path: Path
    score: float
    z: float
    fold: int
    suspicious: bool
    excluded: bool = False
    overlay: str | None = None  # file name under OVERLAY_DIR when written

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "score": self.score, "z": self.z, "fold": self.fold,
                "suspicious": self.suspicious, "excluded": self.excluded, "overlay": self.overlay}


@dataclass
class AuditResult:
    """The ranked list (most suspicious first) and the suggested cut-off."""

    dataset: str
    root: str
    method: str
    params: dict[str, Any]
    folds: int
    entries: list[AuditEntry]
    cutoff: float
    median: float
    mad: float
    seconds: float
    rule: str = RULE
    maps: dict[Path, np.ndarray] = field(default_factory=dict, repr=False)  # kept for the top entries only
    map_scale: tuple[float, float] = (0.0, 1.0)  # (value shown as 0, value shown as 0.5)

    @property
    def suspicious(self) -> list[AuditEntry]:
        return [e for e in self.entries if e.suspicious]

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "root": self.root, "method": self.method, "params": self.params,
                "folds": self.folds, "n_images": len(self.entries), "n_suspicious": len(self.suspicious),
                "cutoff": self.cutoff, "cutoff_rule": self.rule, "median": self.median, "mad": self.mad,
                "seconds": round(self.seconds, 3), "images": [e.to_json() for e in self.entries]}


def fold_of(n: int, folds: int, seed: int) -> np.ndarray:
    """Fold number of each of ``n`` images: a seeded shuffle dealt round-robin (sizes differ by <= 1)."""
    order = np.random.default_rng(seed).permutation(n)
    assignment = np.empty(n, np.int64)
    assignment[order] = np.arange(n) % folds
    return assignment


def robust_cutoff(scores: np.ndarray) -> tuple[float, float, float]:
    """(cut-off, median, MAD) by :data:`RULE`. With no spread at all (MAD 0) the standard
    deviation stands in; with none either, the cut-off is the median (nothing is above it)."""
    finite = scores[np.isfinite(scores)]
    median = float(np.median(finite))
    mad = float(np.median(np.abs(finite - median)))
    spread = MAD_TO_SIGMA * mad if mad > 0 else float(finite.std())
    return median + MODIFIED_Z_CUTOFF * spread, median, mad


def audit_training_set(dataset: Dataset, method: str = "patchcore", params: dict[str, Any] | None = None, *,
                       folds: int = DEFAULT_FOLDS, device: Any = None, seed: int = 0,
                       excluded: Collection[str | Path] = (), keep_maps: int = DEFAULT_OVERLAYS,
                       progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> AuditResult:
    """Score every good training image of ``dataset`` out of fold; see the module docstring.

    ``excluded``: images already excluded in the workspace; no fold model learns from them,
    but they are scored too (so the user can include them again) and marked. ``keep_maps``: how many of the highest-scoring images
    keep their anomaly map (for the overlays).
    """
    from workbench.core.methods import create_method
    from workbench.core.methods.images import LazyImages
    from workbench.core.training import _path_key
    from workbench.core.workflows import staged

    cancel = cancel or CancelToken()
    records = dataset.train
    n = len(records)
    if folds < 2:
        raise ValueError(f"--folds must be at least 2 (got {folds}): each image is scored by a model "
                         "trained on the other folds.")
    if n < max(folds, 5):
        raise ValueError(f"Dataset '{dataset.name}' has {n} good training image(s) ({dataset.root}); an audit "
                         f"with {folds} folds needs at least {max(folds, 5)}.")
    start = time.perf_counter()
    assignment = fold_of(n, folds, seed)
    excluded_keys = {_path_key(p) for p in excluded}
    is_excluded = np.array([_path_key(r.path) in excluded_keys for r in records], bool)
    scores = np.full(n, np.nan, np.float64)
    kept: dict[int, np.ndarray] = {}
    peaks, medians = np.zeros(n), np.zeros(n)
    overall = make_reporter(progress, "Audit", folds)
    used_params: dict[str, Any] = {}
    for k in range(folds):
        cancel.raise_if_cancelled()
        overall(k, f"fold {k + 1} of {folds}")
        train_idx = np.flatnonzero((assignment != k) & ~is_excluded)
        test_idx = np.flatnonzero(assignment == k)
        if len(train_idx) == 0:
            raise ValueError(f"Fold {k + 1}: every other training image is excluded; include some again.")
        model = create_method(method, device=device, **(params or {}))
        used_params = dict(model.params)
        fold_progress = staged(progress, f"Audit fold {k + 1}/{folds}")
        model.fit(LazyImages([records[i].path for i in train_idx]), fold_progress, cancel)
        fold_scores, fold_maps = model.predict(LazyImages([records[i].path for i in test_idx]), fold_progress, cancel)
        for j, i in enumerate(test_idx):
            scores[i] = float(fold_scores[j])
            peaks[i], medians[i] = float(np.max(fold_maps[j])), float(np.median(fold_maps[j]))
            kept[int(i)] = fold_maps[j].copy()
        if len(kept) > keep_maps:  # memory stays bounded on large sets: keep the current top maps
            top = set(np.argsort(-np.nan_to_num(scores, nan=-np.inf))[:keep_maps].tolist())
            kept = {i: m for i, m in kept.items() if i in top}
        del model
    overall(folds, "done")
    cutoff, median, mad = robust_cutoff(scores)
    spread = MAD_TO_SIGMA * mad if mad > 0 else float(np.nanstd(scores)) or 1.0
    order = np.argsort(-np.nan_to_num(scores, nan=np.inf), kind="stable")
    entries = [AuditEntry(records[i].path, float(scores[i]), float((scores[i] - median) / spread), int(assignment[i]),
                          bool(scores[i] > cutoff) or not np.isfinite(scores[i]),
                          bool(is_excluded[i])) for i in order]
    return AuditResult(dataset.name, str(dataset.root), method, used_params, folds, entries, float(cutoff), median,
                       mad, time.perf_counter() - start, maps={records[i].path: m for i, m in kept.items()},
                       map_scale=(float(np.median(medians)), float(np.median(peaks))))


def _overlay_name(rank: int, path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:60] or "image"
    return f"{rank:03d}_{stem}.png"


def check_audit_out(out_dir: str | Path, dataset_root: str | Path) -> None:
    """Refuse an ``--out`` that is not new, empty or an earlier audit, or that is the dataset
    (or inside or around it), before the folds are fitted."""
    check_output_dir(out_dir, AUDIT_OUTPUT, overwrite=True, inputs=[("the dataset", dataset_root)])


def write_audit(result: AuditResult, out_dir: str | Path, overlays: int = DEFAULT_OVERLAYS) -> Path:
    """Write ``audit.csv`` and ``audit.json`` (ranked, most suspicious first) and heat-map
    overlays of the ``overlays`` highest-scoring images into ``out_dir``, which must be new,
    empty or an earlier audit (replaced whole, atomically: never a mix of two runs)."""
    check_audit_out(out_dir, result.root)
    target = Path(out_dir)
    with staged_dir(target) as staging:
        _write_files(result, staging, overlays)
        atomic_replace_dir(staging, target, AUDIT_OUTPUT, overwrite=True)
    return target


def _write_files(result: AuditResult, out: Path, overlays: int) -> None:
    import cv2

    from workbench.core.data.io import read_image
    from workbench.core.visualize import annotate, heat_overlay

    (out / OVERLAY_DIR).mkdir(parents=True, exist_ok=True)
    lo, mid = result.map_scale
    width = max(mid - lo, 1e-12)
    for rank, entry in enumerate(result.entries[:overlays], start=1):
        amap = result.maps.get(entry.path)
        if amap is None:
            continue
        try:
            image = read_image(entry.path)
        except ValueError:
            continue  # unreadable since the audit ran: listed without an overlay
        map01 = np.clip(0.5 * (amap - lo) / width, 0.0, 1.0).astype(np.float32)
        label = f"#{rank} score {entry.score:.4g}" + (" SUSPICIOUS" if entry.suspicious else "")
        picture = annotate(heat_overlay(image, map01), label, "NG" if entry.suspicious else "OK")
        ok, data = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        if ok:
            entry.overlay = _overlay_name(rank, entry.path)
            atomic_write_bytes(out / OVERLAY_DIR / entry.overlay, data.tobytes())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["rank", "path", "score", "robust_z", "fold", "suspicious", "excluded", "overlay"])
    for rank, e in enumerate(result.entries, start=1):
        writer.writerow([rank, str(e.path), f"{e.score:.6g}", f"{e.z:.3f}", e.fold, int(e.suspicious),
                         int(e.excluded), f"{OVERLAY_DIR}/{e.overlay}" if e.overlay else ""])
    atomic_write_bytes(out / CSV_NAME, buffer.getvalue().encode("utf-8"))
    atomic_write_json(out / JSON_NAME, result.to_json())


def audit_and_write(dataset: Dataset, out_dir: str | Path, method: str = "patchcore",
                    params: dict[str, Any] | None = None, *, folds: int = DEFAULT_FOLDS, device: Any = None,
                    excluded: Collection[str | Path] = (), overlays: int = DEFAULT_OVERLAYS,
                    progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> AuditResult:
    """The whole job the app's "Audit training images" button runs: audit, then write the files
    (the overlays the list shows as thumbnails). Writes nothing to the workspace database: the
    GUI thread stores the user's exclusions."""
    check_audit_out(out_dir, dataset.root)
    result = audit_training_set(dataset, method, params, folds=folds, device=device, excluded=excluded,
                                keep_maps=overlays, progress=progress, cancel=cancel)
    (cancel or CancelToken()).raise_if_cancelled()
    write_audit(result, out_dir, overlays=overlays)
    return result


__all__ = ["AUDIT_OUTPUT", "DEFAULT_FOLDS", "RULE", "AuditEntry", "AuditResult", "audit_and_write",
           "audit_training_set", "check_audit_out", "fold_of", "robust_cutoff", "write_audit"]
