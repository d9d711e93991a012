"""Evaluate a trained model on a dataset's test split with the MVTec AD metric definitions.

Pixel metrics are computed at ground-truth resolution: each map is resized to its image's
own size; good images count with all-OK masks; defect images without a mask are left out
of pixel metrics (and counted) rather than treated as defect-free.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from workbench.core.data import Dataset, ImageRecord, read_image, read_mask
from workbench.core.data.io import image_dimensions
from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods import AnomalyModel
from workbench.core.methods.images import LazyImages
from workbench.core.metrics import aupro, f1_max, image_auroc, pixel_auroc, resize_map


@dataclass
class EvalResult:
    """Metrics plus the raw per-image outputs the threshold and review panels need."""

    image_auroc: float | None
    pixel_auroc: float | None
    aupro: float | None
    f1_max: float | None
    f1_threshold: float | None
    n_good: int
    n_defect: int
    n_without_mask: int
    predict_seconds: float
    ms_per_image: float
    records: list[ImageRecord] = field(repr=False, default_factory=list)
    scores: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0, np.float32))
    maps: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 0, 0), np.float32))

    def metrics(self) -> dict[str, Any]:
        """JSON-friendly summary (no arrays)."""
        return {k: v for k, v in asdict(self).items() if k not in {"records", "scores", "maps"}}


def evaluate_model(model: AnomalyModel, dataset: Dataset, progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None) -> EvalResult:
    records = dataset.test
    if not records:
        raise ValueError(f"Dataset '{dataset.name}' has no test images to evaluate on ({dataset.root}).")
    start = time.perf_counter()
    scores, maps = model.predict(LazyImages([r.path for r in records]), progress, cancel)
    return evaluate_predictions(records, scores, maps, time.perf_counter() - start)


def evaluate_predictions(records: list[ImageRecord], scores: np.ndarray, maps: np.ndarray,
                         seconds: float = 0.0) -> EvalResult:
    """Metrics from existing predictions (e.g. cached ones, or with reviewed labels swapped in)."""
    labels = np.array([r.is_anomalous for r in records])
    has_both = labels.any() and not labels.all()
    f1, thr = f1_max(labels, scores) if has_both else (None, None)
    masks, pix_maps, n_without = pixel_pairs(records, maps)
    has_defect_pixels = any(m.any() for m in masks)
    return EvalResult(
        image_auroc=image_auroc(labels, scores) if has_both else None,
        pixel_auroc=pixel_auroc(masks, pix_maps) if has_defect_pixels else None,
        aupro=aupro(masks, pix_maps) if has_defect_pixels else None,
        f1_max=f1, f1_threshold=thr,
        n_good=int((~labels).sum()), n_defect=int(labels.sum()), n_without_mask=n_without,
        predict_seconds=seconds, ms_per_image=1000.0 * seconds / max(len(records), 1),
        records=records, scores=scores, maps=maps,
    )


def pixel_pairs(records: list[ImageRecord], maps: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """(masks, maps) at ground-truth resolution for images with pixel ground truth."""
    masks, out_maps, without = [], [], 0
    for record, amap in zip(records, maps):
        if record.is_anomalous and record.mask_path is None:
            without += 1
            continue
        if record.mask_path is not None:
            mask = read_mask(record.mask_path)
        else:
            mask = np.zeros(_image_shape(record), bool)
        masks.append(mask)
        out_maps.append(resize_map(amap, mask.shape))
    return masks, out_maps, without


def _image_shape(record: ImageRecord) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    shape = image_dimensions(record.path)
    return shape if shape is not None else read_image(record.path).shape[:2]
