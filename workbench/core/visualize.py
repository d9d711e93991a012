"""Heat-map overlays and defect outlines for the CLI, the report and the GUI.

Maps are normalised per dataset, never per image (field notes: per-image scaling paints
every good image red). The scale is anchored on good images: 0 at the median good pixel,
0.5 at the pixel threshold (by default the highest pixel score seen on held-out good
images), 1 at twice that distance. So "warmer than the middle of the colour bar" always
means "beyond anything normal we have seen".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class MapScale:
    low: float
    threshold: float

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], fallback_maps: np.ndarray | None = None) -> "MapScale":
        stats = metadata.get("score_stats", {}).get("pixel")
        pixel_thr = metadata.get("thresholds", {}).get("pixel", {}).get("value")
        if stats:
            low = stats["p50"]
            thr = pixel_thr if pixel_thr is not None else stats["max"]
        elif fallback_maps is not None and fallback_maps.size:
            low, thr = float(np.quantile(fallback_maps, 0.5)), float(np.quantile(fallback_maps, 0.99))
        else:
            raise ValueError("No score statistics in the model to scale heat maps; retrain or calibrate it.")
        if thr <= low:
            thr = low + 1e-6
        return cls(float(low), float(thr))

    def normalize(self, amap: np.ndarray) -> np.ndarray:
        return np.clip((amap - self.low) / (2.0 * (self.threshold - self.low)), 0.0, 1.0).astype(np.float32)


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
    """Binary defect mask: map >= threshold at ``shape`` resolution, small blobs removed."""
    if shape is not None and amap.shape != shape:
        amap = cv2.resize(amap, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    region = (amap >= threshold).astype(np.uint8)
    if min_area > 0 and region.any():
        n, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
        keep = np.zeros(n, bool)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
        region = keep[labels].astype(np.uint8)
    return region.astype(bool)


def draw_outline(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 0, 0),
                 thickness: int = 2) -> np.ndarray:
    """Draw the contours of ``mask`` on a copy of the RGB image."""
    out = image.copy()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, color, thickness)
    return out
