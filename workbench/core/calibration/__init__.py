"""Threshold presets, score normalisation and named calibrations stored in model packages."""

from workbench.core.calibration.calibrate import (
    NORMALIZATIONS,
    PIXEL_PRESETS,
    Calibration,
    calibrate,
    denormalize,
    load_calibrations,
    normalize_scores,
    save_calibration,
)
from workbench.core.calibration.thresholds import (
    PRESETS,
    Interval,
    bootstrap_rates,
    choose_threshold,
    sample_size_warning,
    threshold_for_false_alarm,
    threshold_for_recall,
)

__all__ = [
    "NORMALIZATIONS", "PIXEL_PRESETS", "PRESETS", "Calibration", "Interval", "bootstrap_rates", "calibrate",
    "choose_threshold", "denormalize", "load_calibrations", "normalize_scores", "sample_size_warning",
    "save_calibration", "threshold_for_false_alarm", "threshold_for_recall",
]
