"""Calibrate a trained model on labelled data and store named calibrations in its package.

Thresholds are stored in the model's raw score units (what the model and the ONNX graph
output) together with the normalisation chosen for display, so a threshold means the same
thing in the GUI, the CLI and on the line. Several named calibrations can coexist in one
package (e.g. "strict" and "lenient"); one of them is active and copied to ``thresholds``.
"""

from __future__ import annotations

import datetime as _dt
import math
import getpass
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.calibration.thresholds import bootstrap_rates, choose_threshold, sample_size_warning
from workbench.core.evaluation import EvalResult, pixel_pairs
from workbench.core.files import atomic_write_json
from workbench.core.formats import ModelJson, ModelPackageError, validate
from workbench.core.methods.package import META_FILE, read_metadata
from workbench.core.metrics import confusion_at, pixel_f1_max

NORMALIZATIONS = ("raw", "minmax", "quantile")
PIXEL_PRESETS = ("f1", "good_max", "none")


def normalize_scores(scores: np.ndarray, kind: str, image_stats: dict[str, float] | None) -> np.ndarray:
    """Map raw scores to a comparable scale using statistics of held-out good images.

    ``minmax``: 0 at the lowest and 1 at the highest good score; ``quantile``: 0 at the median
    and 1 at the highest good score (robust to one low outlier). ``raw`` leaves scores alone.
    """
    scores = np.asarray(scores, np.float64)
    if kind == "raw":
        return scores
    if kind not in NORMALIZATIONS:
        raise ValueError(f"Unknown normalisation '{kind}'. Choose one of {', '.join(NORMALIZATIONS)}.")
    if not image_stats:
        raise ValueError("This model has no score statistics of good images; only 'raw' is available. "
                         "Retrain it to record them.")
    low = image_stats["min"] if kind == "minmax" else image_stats["p50"]
    span = max(image_stats["max"] - low, 1e-12)
    return (scores - low) / span


def denormalize(value: float, kind: str, image_stats: dict[str, float] | None) -> float:
    if kind == "raw":
        return float(value)
    low = image_stats["min"] if kind == "minmax" else image_stats["p50"]  # type: ignore[index]
    return float(low + value * max(image_stats["max"] - low, 1e-12))  # type: ignore[index]


@dataclass
class Calibration:
    name: str
    preset: str
    target: float | None
    image_threshold: float
    pixel_threshold: float | None
    min_defect_area: int
    normalization: str
    created_by: str
    created_at: str
    data: dict[str, Any]
    confusion: dict[str, float]
    intervals: dict[str, dict[str, float]]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate(evaluation: EvalResult, preset: str, target: float | None = None, *, name: str = "default",
              pixel_preset: str = "f1", min_defect_area: int = 0, normalization: str = "raw",
              image_stats: dict[str, float] | None = None, data: dict[str, Any] | None = None) -> Calibration:
    """Choose thresholds on an evaluation's scores (and maps for the pixel threshold)."""
    if target is not None and not math.isfinite(target):
        raise ValueError(f"The calibration target must be a finite number, not {target}.")
    labels = np.array([r.is_anomalous for r in evaluation.records])
    normalize_scores(evaluation.scores[:1], normalization, image_stats)  # validates the choice early
    threshold = choose_threshold(labels, evaluation.scores, preset, target)
    if not math.isfinite(threshold):
        raise ValueError(f"The chosen threshold is not a finite number ({threshold}): the model's scores on "
                         "these images are not finite. Retrain the model.")
    confusion = confusion_at(labels, evaluation.scores, threshold)
    warnings = []
    if preset == "false_alarm" and target is not None:
        warning = sample_size_warning(int((~labels).sum()), target)
        if warning:
            warnings.append(warning)
    return Calibration(
        name=name, preset=preset, target=target, image_threshold=float(threshold),
        pixel_threshold=_pixel_threshold(evaluation, pixel_preset), min_defect_area=int(min_defect_area),
        normalization=normalization, created_by=_user(),
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        data={**(data or {}), "n_good": int((~labels).sum()), "n_defect": int(labels.sum())},
        confusion={"tp": confusion.tp, "fp": confusion.fp, "tn": confusion.tn, "fn": confusion.fn,
                   "precision": confusion.precision, "recall": confusion.recall, "f1": confusion.f1,
                   "false_alarm_rate": confusion.false_alarm_rate, "escape_rate": confusion.escape_rate},
        intervals={k: asdict(v) for k, v in bootstrap_rates(labels, evaluation.scores, threshold).items()},
        warnings=warnings,
    )


def _pixel_threshold(evaluation: EvalResult, preset: str) -> float | None:
    if preset == "none":
        return None
    if preset not in PIXEL_PRESETS:
        raise ValueError(f"Unknown pixel preset '{preset}'. Choose one of {', '.join(PIXEL_PRESETS)}.")
    masks, maps, _ = pixel_pairs(evaluation.records, evaluation.maps)
    if preset == "good_max":
        good = [m for r, m in zip(evaluation.records, evaluation.maps) if r.is_good]
        if not good:
            raise ValueError("The 'good_max' pixel threshold needs good test images.")
        return float(np.nextafter(np.float32(max(float(m.max()) for m in good)), np.float32(np.inf)))
    if not any(m.any() for m in masks):
        return None  # no pixel ground truth: leave the segmentation threshold unset
    return float(pixel_f1_max(masks, maps)[1])


def save_calibration(model_dir: str | Path, calibration: Calibration, activate: bool = True) -> dict[str, Any]:
    """Add (or replace) ``calibration`` in the package's model.json, atomically."""
    model_dir = Path(model_dir)
    meta = read_metadata(model_dir)
    meta.setdefault("calibrations", {})[calibration.name] = calibration.to_dict()
    if activate:
        meta["active_calibration"] = calibration.name
        meta["thresholds"] = {
            "image": {"value": calibration.image_threshold, "source": f"calibration '{calibration.name}'"},
            "min_defect_area": calibration.min_defect_area,
            "normalization": calibration.normalization,
        }
        if calibration.pixel_threshold is not None:
            meta["thresholds"]["pixel"] = {"value": calibration.pixel_threshold,
                                           "source": f"calibration '{calibration.name}'"}
    validate(ModelJson, meta, model_dir / META_FILE, ModelPackageError,  # never write what load refuses
             "Nothing was saved: the calibration holds values that are not valid (e.g. not finite numbers).")
    atomic_write_json(model_dir / META_FILE, meta)
    return meta


def load_calibrations(model_dir: str | Path) -> dict[str, dict[str, Any]]:
    return dict(read_metadata(model_dir).get("calibrations", {}))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some service contexts
        return "unknown"


__all__ = ["Calibration", "NORMALIZATIONS", "PIXEL_PRESETS", "calibrate", "denormalize",
           "load_calibrations", "normalize_scores", "save_calibration"]
