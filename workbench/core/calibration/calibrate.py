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

from workbench.core.calibration.policy import (NORMALIZATIONS, InspectionPolicy, check_calibration_record, denormalize, load_policy,
                                               normalize_scores, read_package_metadata, write_policy)
from workbench.core.calibration.thresholds import (centred_cut, choose_threshold, guaranteed_threshold, rate_intervals,
                                                   sample_size_warning, threshold_for_recall, weak_model_warning)
from workbench.core.evaluation import EvalResult, pixel_inputs
from workbench.core.metrics import confusion_at, pixel_f1_max

PIXEL_PRESETS = ("f1", "good_max", "none")


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
    ok_threshold: float | None = None       # scores in [ok_threshold, image_threshold) go to REVIEW
    confidence: float | None = None         # the 'guaranteed_fpr' preset's confidence
    masks: dict[str, bool] = field(default_factory=dict)  # {"roi": True, "ignore": False}: used when calibrating

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def policy(self, base: InspectionPolicy | None = None) -> InspectionPolicy:
        """This calibration's thresholds on ``base`` (which supplies masks and score statistics)."""
        return policy_of(self, base)


def policy_of(calibration: Any, base: InspectionPolicy | None = None) -> InspectionPolicy:
    """The thresholds of a calibration (object or stored dict) on ``base``."""
    get = calibration.get if isinstance(calibration, dict) else lambda k, d=None: getattr(calibration, k, d)
    return (base or InspectionPolicy()).replace(
        ng_threshold=get("image_threshold"), ok_threshold=get("ok_threshold"),
        pixel_threshold=get("pixel_threshold"), min_defect_area=int(get("min_defect_area", 0) or 0),
        normalization=get("normalization", "raw") or "raw", source=f"calibration '{get('name')}'")


def calibrate(evaluation: EvalResult, preset: str, target: float | None = None, *, name: str = "default",
              pixel_preset: str = "f1", min_defect_area: int = 0, normalization: str = "raw",
              image_stats: dict[str, float] | None = None, data: dict[str, Any] | None = None,
              ok_threshold: float | None = None, ok_recall: float | None = None, confidence: float = 0.95,
              policy: InspectionPolicy | None = None, method: str | None = None) -> Calibration:
    """Choose thresholds on an evaluation's scores (and maps for the pixel threshold).

    ``preset`` "guaranteed_fpr" picks the NG threshold so that the false-alarm rate on new good
    parts stays <= ``target`` with probability ``confidence`` (or raises, naming how many good
    images that needs). A band is set by ``ok_threshold`` (raw units) or ``ok_recall`` (the
    highest OK threshold that still sends that share of defective parts to REVIEW or NG).
    ``policy`` supplies the ROI/ignore masks: ``evaluation`` must have been computed with it.
    """
    if target is not None and not math.isfinite(target):
        raise ValueError(f"The calibration target must be a finite number, not {target}.")
    labels = np.array([r.is_anomalous for r in evaluation.records])
    normalize_scores(evaluation.scores[:1], normalization, image_stats)  # validates the choice early
    if preset == "guaranteed_fpr":
        if target is None:
            raise ValueError("The guaranteed false-alarm preset needs a target rate.")
        # centring only raises it (towards the next score): the guarantee holds all the more
        threshold = centred_cut(evaluation.scores, guaranteed_threshold(evaluation.scores[~labels], target,
                                                                          confidence))
    else:
        threshold = choose_threshold(labels, evaluation.scores, preset, target)
    if not math.isfinite(threshold):
        raise ValueError(f"The chosen threshold is not a finite number ({threshold}): the model's scores on "
                         "these images are not finite. Retrain the model.")
    if ok_recall is not None:
        ok_threshold = min(centred_cut(evaluation.scores, threshold_for_recall(evaluation.scores[labels], ok_recall)),
                           threshold)
    if ok_threshold is not None and ok_threshold > threshold:
        raise ValueError(f"The OK threshold ({ok_threshold:.6g}) is above the NG threshold ({threshold:.6g}): "
                         "scores between the two go to REVIEW, so the OK threshold must be the lower one.")
    confusion = confusion_at(labels, evaluation.scores, threshold)
    warnings = []
    if preset == "false_alarm" and target is not None:
        warning = sample_size_warning(int((~labels).sum()), target)
        if warning:
            warnings.append(warning)
    weak = weak_model_warning(evaluation.image_auroc, confusion.false_alarm_rate if (~labels).any() else None, method)
    if weak:
        warnings.append(weak)
    base = policy or InspectionPolicy()
    return Calibration(
        name=name, preset=preset, target=target, image_threshold=float(threshold),
        pixel_threshold=_pixel_threshold(evaluation, pixel_preset, base), min_defect_area=int(min_defect_area),
        normalization=normalization, created_by=_user(),
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        data={**(data or {}), "n_good": int((~labels).sum()), "n_defect": int(labels.sum())},
        confusion={"tp": confusion.tp, "fp": confusion.fp, "tn": confusion.tn, "fn": confusion.fn,
                   "precision": confusion.precision, "recall": confusion.recall, "f1": confusion.f1,
                   "false_alarm_rate": confusion.false_alarm_rate, "escape_rate": confusion.escape_rate},
        intervals={k: asdict(v) for k, v in rate_intervals(labels, evaluation.scores, threshold,
                                                           ok_threshold).items()},
        warnings=warnings, ok_threshold=None if ok_threshold is None else float(ok_threshold),
        confidence=confidence if preset == "guaranteed_fpr" else None,
        masks={"roi": base.roi is not None, "ignore": base.ignore is not None},
    )


def _pixel_threshold(evaluation: EvalResult, preset: str, policy: InspectionPolicy) -> float | None:
    if preset == "none":
        return None
    if preset not in PIXEL_PRESETS:
        raise ValueError(f"Unknown pixel preset '{preset}'. Choose one of {', '.join(PIXEL_PRESETS)}.")
    if preset == "good_max":
        good = [(r, m) for r, m in zip(evaluation.records, evaluation.maps) if r.is_good]
        if not good:
            raise ValueError("The 'good_max' pixel threshold needs good test images.")
        sub = EvalResult(None, None, None, None, None, 0, 0, 0, 0.0, 0.0, records=[r for r, _ in good],
                         maps=np.stack([m for _, m in good]))
        _, maps, _ = pixel_inputs(sub, policy if policy.has_masks else None)
        highest = max((float(m.max()) for m in maps if m.size), default=None)
        if highest is None:
            raise ValueError("The 'good_max' pixel threshold needs inspected pixels in good test images.")
        return float(np.nextafter(np.float32(highest), np.float32(np.inf)))
    masks, maps, _ = pixel_inputs(evaluation, policy if policy.has_masks else None)
    if not any(m.any() for m in masks):
        return None  # no pixel ground truth: leave the segmentation threshold unset
    return float(pixel_f1_max(masks, maps)[1])


def save_calibration(model_dir: str | Path, calibration: Calibration, activate: bool = True,
                     policy: InspectionPolicy | None = None) -> dict[str, Any]:
    """Add (or replace) ``calibration`` in the package's model.json, atomically; when
    ``activate``, it becomes the package's inspection policy (``policy`` supplies the ROI and
    ignore masks; by default the package keeps its current ones)."""
    model_dir = Path(model_dir)
    check_calibration_record(model_dir, calibration.to_dict())  # before the policy is built from it
    base = policy if policy is not None else load_policy(model_dir)
    meta = write_policy(model_dir, policy_of(calibration, base), calibration=calibration.to_dict(), activate=activate)
    from workbench.core.run_record import new_record, save_record

    save_record(model_dir, new_record("calibrate", method=meta.get("method"), params=meta.get("params"),
                                      metrics=calibration.to_dict()))
    return meta


def load_calibrations(model_dir: str | Path) -> dict[str, dict[str, Any]]:
    return dict(read_package_metadata(model_dir).get("calibrations", {}))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some service contexts
        return "unknown"


__all__ = ["Calibration", "NORMALIZATIONS", "PIXEL_PRESETS", "calibrate", "denormalize",
           "load_calibrations", "normalize_scores", "policy_of", "save_calibration"]
