"""Heat-map overlays and defect outlines for the CLI, the report and the GUI.

Maps are normalised per dataset, never per image (field notes: per-image scaling paints
every good image red). The scale is anchored on good images: 0 at the median good pixel,
0.5 at the pixel threshold (by default the highest pixel score seen on held-out good
images), 1 at twice that distance. So "warmer than the middle of the colour bar" always
means "beyond anything normal we have seen".
"""

from __future__ import annotations

import cv2
import numpy as np

from workbench.core.calibration.policy import MapScale
from workbench.core.calibration.policy import defect_region as _policy_region


__all__ = ["MapScale", "annotate", "defect_region", "draw_outline", "heat_overlay"]


def heat_overlay(image: np.ndarray, map01: np.ndarray, alpha: float = 0.5,
                 colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Blend a [0, 1] map (any size, resized to the image) over an RGB uint8 image."""
    h, w = image.shape[:2]
    if map01.shape != (h, w):
        map01 = cv2.resize(map01, (w, h), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap((map01 * 255).astype(np.uint8), colormap)[:, :, ::-1]
    return cv2.addWeighted(image, 1.0 - alpha, heat, alpha, 0.0)


def defect_region(amap: np.ndarray, threshold: float, shape: tuple[int, int] | None = None,
                  min_area: int = 0) -> np.ndarray:
    """Binary defect mask: map >= threshold at ``shape`` resolution, blobs under ``min_area`` removed
    (the policy's rule; :meth:`InspectionPolicy.decide` also applies the inspected area)."""
    return _policy_region(amap, threshold, shape, min_area)[0]


VERDICT_COLOURS = {"OK": (40, 200, 60), "REVIEW": (255, 170, 0), "NG": (230, 30, 30), "error": (160, 0, 160)}


def annotate(image: np.ndarray, text: str, verdict: str = "") -> np.ndarray:
    """Write ``text`` (score and decision) in the top-left corner, on a dark band, coloured by verdict."""
    out = image.copy()
    h, w = out.shape[:2]
    scale = max(0.4, min(w, h) / 400.0)
    thickness = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.rectangle(out, (0, 0), (min(w, tw + 8), min(h, th + base + 8)), (0, 0, 0), -1)
    cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
                VERDICT_COLOURS.get(verdict, (255, 255, 255)), thickness, cv2.LINE_AA)
    return out


def draw_outline(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 0, 0),
                 thickness: int = 2) -> np.ndarray:
    """Draw the contours of ``mask`` on a copy of the RGB image."""
    out = image.copy()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, color, thickness)
    return out
