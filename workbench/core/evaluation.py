"""Evaluate a trained model on a dataset's test split with the MVTec AD metric definitions.

Pixel metrics are computed at ground-truth resolution: each map is resized to its image's
own size; good images count with all-OK masks; defect images without a mask are left out
of pixel metrics (and counted) rather than treated as defect-free.

With an inspection policy that has a region of interest or an ignore mask, image scores are
the policy's (ignored pixels never raise them) and ignored pixels are left out of pixel
AUROC and PRO; ``raw_scores`` keeps the model's own scores.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.core.data import Dataset, ImageRecord, read_image, read_mask
from workbench.core.data.io import image_dimensions
from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.metrics import aupro, f1_max, image_auroc, pixel_auroc, resize_map

if TYPE_CHECKING:  # the methods need torch; evaluating cached predictions does not
    from workbench.core.calibration.policy import InspectionPolicy
    from workbench.core.methods import AnomalyModel


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
    raw_scores: np.ndarray | None = field(repr=False, default=None)  # before ROI/ignore (None: same)
    masked: bool = False  # an ROI/ignore mask was applied
    # PRO curve and pixel preset values stored with cached predictions (see core.predictions);
    # None when computed afresh
    derived: dict[str, Any] | None = field(repr=False, default=None, compare=False)

    def metrics(self) -> dict[str, Any]:
        """JSON-friendly summary (no arrays)."""
        return {k: v for k, v in asdict(self).items() if k not in {"records", "scores", "maps", "raw_scores", "derived"}}


def evaluate_model(model: "AnomalyModel", dataset: Dataset, progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None, policy: "InspectionPolicy | None" = None) -> EvalResult:
    from workbench.core.methods.images import LazyImages

    records = dataset.test
    if not records:
        raise ValueError(f"Dataset '{dataset.name}' has no test images to evaluate on ({dataset.root}).")
    start = time.perf_counter()
    scores, maps = model.predict(LazyImages([r.path for r in records]), progress, cancel)
    return evaluate_predictions(records, scores, maps, time.perf_counter() - start, policy=policy)


def evaluate_predictions(records: list[ImageRecord], scores: np.ndarray, maps: np.ndarray,
                         seconds: float = 0.0, policy: "InspectionPolicy | None" = None) -> EvalResult:
    """Metrics from existing predictions (e.g. cached ones, or with reviewed labels swapped in).

    ``policy``: only its ROI / ignore masks matter here (thresholds do not change these metrics).
    """
    labels = np.array([r.is_anomalous for r in records])
    masked = policy is not None and policy.has_masks
    raw_scores = None
    if masked:
        raw_scores = np.asarray(scores)
        scores = np.array([policy.image_score(s, m, record_shape(r))  # type: ignore[union-attr]
                           for r, s, m in zip(records, raw_scores, maps)], np.float64)
    has_both = labels.any() and not labels.all()
    f1, thr = f1_max(labels, scores) if has_both else (None, None)
    masks, pix_maps, n_without, valid = masked_pixel_pairs(records, maps, policy)
    has_defect_pixels = any((m & v).any() if v is not None else m.any() for m, v in zip(masks, valid))
    return EvalResult(
        image_auroc=image_auroc(labels, scores) if has_both else None,
        pixel_auroc=pixel_auroc(*_valid_pixels(masks, pix_maps, valid)) if has_defect_pixels else None,
        aupro=aupro(masks, pix_maps, valid=valid if masked else None) if has_defect_pixels else None,
        f1_max=f1, f1_threshold=thr,
        n_good=int((~labels).sum()), n_defect=int(labels.sum()), n_without_mask=n_without,
        predict_seconds=seconds, ms_per_image=1000.0 * seconds / max(len(records), 1),
        records=records, scores=scores, maps=maps, raw_scores=raw_scores, masked=masked,
    )


def relabel_image_metrics(evaluation: EvalResult, records: list[ImageRecord], roc: Any = None) -> EvalResult:
    """``evaluation`` with new image-level ground truth (one verdict changed in review): image
    AUROC, F1-max and the class counts are recomputed from the same scores (cheap); pixel
    metrics are kept, so recompute those separately when a mask or a good/defect verdict changed.
    ``roc``: the core ROC curve of these labels and scores when the caller has it already (the
    AUROC is then its trapezoid area, which is how scikit-learn's AUROC is defined)."""
    if len(records) != len(evaluation.records):
        raise ValueError(f"got {len(records)} records for an evaluation of {len(evaluation.records)} images")
    labels = np.array([r.is_anomalous for r in records], bool)
    scores = np.asarray(evaluation.scores, np.float64)
    has_both = bool(labels.any() and not labels.all())
    f1, thr = f1_max(labels, scores) if has_both else (None, None)
    if has_both:
        auroc = float(np.trapezoid(roc.y, roc.x)) if roc is not None else image_auroc(labels, scores)
    return dataclasses.replace(evaluation, records=list(records),
                               image_auroc=auroc if has_both else None,
                               f1_max=f1, f1_threshold=thr, n_good=int((~labels).sum()), n_defect=int(labels.sum()))


def _valid_pixels(masks: list[np.ndarray], maps: list[np.ndarray], valid: list[np.ndarray | None]
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Masks and maps with ignored pixels removed (as 1 x n rows: pixel AUROC/F1 need no shape)."""
    if all(v is None for v in valid):
        return masks, maps
    out_masks, out_maps = [], []
    for mask, amap, keep in zip(masks, maps, valid):
        if keep is None:
            out_masks.append(mask)
            out_maps.append(amap)
        elif keep.any():
            out_masks.append(np.asarray(mask, bool)[keep][None, :])
            out_maps.append(np.asarray(amap)[keep][None, :])
    return out_masks, out_maps


def pixel_pairs(records: list[ImageRecord], maps: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """(masks, maps) at ground-truth resolution for images with pixel ground truth."""
    masks, out_maps, without, _ = masked_pixel_pairs(records, maps, None)
    return masks, out_maps, without


def masked_pixel_pairs(records: list[ImageRecord], maps: np.ndarray, policy: "InspectionPolicy | None"
                       ) -> tuple[list[np.ndarray], list[np.ndarray], int, list[np.ndarray | None]]:
    """:func:`pixel_pairs` plus, per image, the policy's inspected pixels (None = all)."""
    masks, out_maps, valid, without = [], [], [], 0
    for record, amap in zip(records, maps):
        if record.is_anomalous and record.mask_path is None:
            without += 1
            continue
        if record.mask_path is not None:
            mask = read_mask(record.mask_path)
        else:
            mask = np.zeros(record_shape(record), bool)
        masks.append(mask)
        out_maps.append(resize_map(amap, mask.shape))
        valid.append(policy.inspected(mask.shape)[0] if policy is not None else None)
    return masks, out_maps, without, valid


def pixel_inputs(evaluation: EvalResult, policy: "InspectionPolicy | None" = None
                 ) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """(masks, maps, without) for pixel metrics/presets with the policy's ignored pixels left out."""
    masks, maps, without, valid = masked_pixel_pairs(evaluation.records, evaluation.maps, policy)
    masks, maps = _valid_pixels(masks, maps, valid)
    return masks, maps, without


def record_shape(record: ImageRecord) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    shape = image_dimensions(record.path)
    return shape if shape is not None else read_image(record.path).shape[:2]
