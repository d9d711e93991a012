"""Cache a model's predictions on a dataset's test split inside its model folder.

The threshold and review panels need every test image's score and map; predicting again
each time a panel opens would cost seconds to minutes. Predictions are stored as
``predictions-<key>.npz`` (no pickle) with the image paths they belong to, and are used only
when those paths still match the dataset (otherwise they are recomputed).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.data import Dataset
from workbench.core.evaluation import EvalResult, evaluate_model, evaluate_predictions
from workbench.core.files import atomic_write_bytes
from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods.package import load_model


def _cache_path(model_dir: Path, dataset: Dataset) -> Path:
    key = hashlib.sha1(f"{Path(dataset.root).resolve()}|{dataset.name}".encode()).hexdigest()[:12]
    return Path(model_dir) / f"predictions-{key}.npz"


PRO_PLOT_POINTS = 1000  # the stored PRO curve is thinned to this many points (what the Threshold step plots)


def derived_results(result: EvalResult) -> dict[str, Any]:
    """What the Threshold step needs besides scores and maps, computed once when the cache is
    written (after training) instead of each time the step opens: the metrics, the pixel
    thresholds of the pixel presets and the PRO curve thinned for plotting."""
    from workbench.core.calibration.calibrate import _pixel_threshold
    from workbench.core.calibration.policy import InspectionPolicy
    from workbench.core.evaluation import pixel_pairs
    from workbench.core.metrics import downsample_curve, pro_curve

    presets: dict[str, float | None] = {}
    for preset in ("f1", "good_max"):
        try:
            presets[preset] = _pixel_threshold(result, preset, InspectionPolicy())
        except ValueError:
            presets[preset] = None
    out: dict[str, Any] = {"metrics": result.metrics(), "pixel_presets": presets, "pro": None}
    masks, maps, _ = pixel_pairs(result.records, result.maps)
    if any(m.any() for m in masks):
        curve = downsample_curve(pro_curve(masks, maps), PRO_PLOT_POINTS)
        out["pro"] = {"fpr": curve.fpr, "pro": curve.pro, "thresholds": curve.thresholds}
    return out


def save_predictions(model_dir: str | Path, dataset: Dataset, result: EvalResult, derived: bool = False) -> Path:
    """Store ``result``'s scores and maps; with ``derived``, also :func:`derived_results`."""
    path = _cache_path(Path(model_dir), dataset)
    buffer = io.BytesIO()
    extra: dict[str, np.ndarray] = {}
    if derived:
        info = derived_results(result)
        extra["derived"] = np.array(json.dumps({"metrics": info["metrics"], "pixel_presets": info["pixel_presets"]}))
        if info["pro"] is not None:
            extra.update({f"pro_{k}": np.asarray(v, np.float64) for k, v in info["pro"].items()})
    np.savez_compressed(buffer, paths=np.array([str(r.path) for r in result.records]),
                        scores=result.scores, maps=result.maps.astype(np.float32),
                        seconds=np.array(result.predict_seconds), **extra)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_predictions(model_dir: str | Path, dataset: Dataset) -> EvalResult | None:
    """Cached predictions for ``dataset``'s test split, or None when absent or stale."""
    path = _cache_path(Path(model_dir), dataset)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            paths, scores, maps, seconds = data["paths"], data["scores"], data["maps"], float(data["seconds"])
            derived = json.loads(str(data["derived"])) if "derived" in data.files else None
            if derived is not None:
                derived["pro"] = ({k: data[f"pro_{k}"] for k in ("fpr", "pro", "thresholds")}
                                  if "pro_fpr" in data.files else None)
    except (OSError, ValueError, KeyError):
        return None  # damaged cache: recompute rather than fail
    records = dataset.test
    if [str(r.path) for r in records] != paths.tolist():
        return None
    if derived is None:
        return evaluate_predictions(records, scores, maps, seconds)
    metrics = {k: v for k, v in derived["metrics"].items() if k not in ("masked",)}
    result = EvalResult(**metrics, records=records, scores=scores, maps=maps)
    result.derived = derived
    return result


def evaluation_for(model_dir: str | Path, dataset: Dataset, device=None, progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None) -> EvalResult:
    """Cached evaluation of the model in ``model_dir`` on ``dataset``, computing it if needed."""
    cached = load_predictions(model_dir, dataset)
    if cached is not None:
        return cached
    result = evaluate_model(load_model(model_dir, device=device), dataset, progress, cancel)
    save_predictions(model_dir, dataset, result)
    return result


__all__ = ["PRO_PLOT_POINTS", "derived_results", "evaluation_for", "load_predictions", "save_predictions"]
