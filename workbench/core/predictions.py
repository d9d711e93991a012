"""Cache a model's predictions on a dataset's test split inside its model folder.

The threshold and review panels need every test image's score and map; predicting again
each time a panel opens would cost seconds to minutes. Predictions are stored as
``predictions-<key>.npz`` (no pickle) with the image paths they belong to, and are used only
when those paths still match the dataset (otherwise they are recomputed).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from workbench.core.data import Dataset
from workbench.core.evaluation import EvalResult, evaluate_model, evaluate_predictions
from workbench.core.files import atomic_write_bytes
from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods.package import load_model


def _cache_path(model_dir: Path, dataset: Dataset) -> Path:
    key = hashlib.sha1(f"{Path(dataset.root).resolve()}|{dataset.name}".encode()).hexdigest()[:12]
    return Path(model_dir) / f"predictions-{key}.npz"


def save_predictions(model_dir: str | Path, dataset: Dataset, result: EvalResult) -> Path:
    path = _cache_path(Path(model_dir), dataset)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, paths=np.array([str(r.path) for r in result.records]),
                        scores=result.scores, maps=result.maps.astype(np.float32),
                        seconds=np.array(result.predict_seconds))
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
    except (OSError, ValueError, KeyError):
        return None  # damaged cache: recompute rather than fail
    records = dataset.test
    if [str(r.path) for r in records] != paths.tolist():
        return None
    return evaluate_predictions(records, scores, maps, seconds)


def evaluation_for(model_dir: str | Path, dataset: Dataset, device=None, progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None) -> EvalResult:
    """Cached evaluation of the model in ``model_dir`` on ``dataset``, computing it if needed."""
    cached = load_predictions(model_dir, dataset)
    if cached is not None:
        return cached
    result = evaluate_model(load_model(model_dir, device=device), dataset, progress, cancel)
    save_predictions(model_dir, dataset, result)
    return result
