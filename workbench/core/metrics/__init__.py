"""Evaluation metrics for anomaly detection: image-level, pixel-level and PRO/AUPRO.

Headless (NumPy, scikit-learn, SciPy, OpenCV). Label 1 / mask > 0 means defective, and a
sample or pixel is predicted defective when its score is ``>= threshold``.
"""

from .image import Confusion, Curve, confusion_at, f1_max, image_auroc, pr_curve, roc_curve
from .pixel import pixel_auroc, pixel_f1_max
from .pro import ProCurve, aupro, downsample_curve, pro_curve
from .resize import resize_map, resize_mask

__all__ = [
    "Confusion",
    "Curve",
    "ProCurve",
    "aupro",
    "confusion_at",
    "downsample_curve",
    "f1_max",
    "image_auroc",
    "pixel_auroc",
    "pixel_f1_max",
    "pr_curve",
    "roc_curve",
    "pro_curve",
    "resize_map",
    "resize_mask",
]
