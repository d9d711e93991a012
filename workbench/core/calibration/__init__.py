"""Threshold presets, the inspection policy and named calibrations stored in model packages.

Nothing here imports torch: the line-side ONNX runtime uses the policy.
"""

from workbench.core.calibration.calibrate import (
    PIXEL_PRESETS,
    Calibration,
    calibrate,
    load_calibrations,
    save_calibration,
)
from workbench.core.calibration.policy import (
    NORMALIZATIONS,
    Decision,
    InspectionPolicy,
    MapScale,
    PolicyError,
    denormalize,
    load_policy,
    normalize_scores,
    write_policy,
)
from workbench.core.calibration.thresholds import (
    PRESETS,
    Interval,
    choose_threshold,
    exact_interval,
    guaranteed_threshold,
    policy_report,
    rate_intervals,
    sample_size_warning,
    threshold_for_false_alarm,
    threshold_for_recall,
    weak_model_warning,
)

__all__ = [
    "NORMALIZATIONS", "PIXEL_PRESETS", "PRESETS", "Calibration", "Decision", "InspectionPolicy", "Interval",
    "MapScale", "PolicyError", "calibrate", "choose_threshold", "denormalize", "exact_interval",
    "guaranteed_threshold", "load_calibrations", "load_policy", "normalize_scores", "policy_report",
    "rate_intervals", "sample_size_warning", "save_calibration", "threshold_for_false_alarm",
    "threshold_for_recall", "weak_model_warning", "write_policy",
]
