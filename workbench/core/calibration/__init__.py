"""Threshold presets, the inspection policy and named calibrations stored in model packages.

Names are imported lazily so that the torch-free deployment path can use the threshold and
policy modules of this package without pulling in :mod:`.calibrate` (which evaluates models
and so imports torch).
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import Any

_CALIBRATE = "workbench.core.calibration.calibrate"
_POLICY = "workbench.core.calibration.policy"
_THRESHOLDS = "workbench.core.calibration.thresholds"
_WHERE = {
    **dict.fromkeys(["PIXEL_PRESETS", "Calibration", "calibrate", "load_calibrations", "save_calibration"],
                    _CALIBRATE),
    **dict.fromkeys(["NORMALIZATIONS", "Decision", "InspectionPolicy", "MapScale", "PolicyError", "denormalize",
                     "load_policy", "normalize_scores", "write_policy"], _POLICY),
    **dict.fromkeys(["PRESETS", "Interval", "choose_threshold", "exact_interval", "guaranteed_threshold",
                     "policy_report", "rate_intervals", "sample_size_warning", "threshold_for_false_alarm",
                     "threshold_for_recall", "weak_model_warning"], _THRESHOLDS),
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)


class _Package(ModuleType):
    """Keeps the function ``calibrate`` visible as ``workbench.core.calibration.calibrate``:
    importing the submodule of the same name would otherwise replace it with the module (the
    import system sets the parent's attribute after loading a submodule)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType) and name in _WHERE:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
