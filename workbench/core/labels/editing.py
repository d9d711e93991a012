"""Mask editing operations used by the review panel's brush, eraser, polygon and fill tools.

Pure numpy / OpenCV on boolean (H, W) masks at the image's own resolution, so the GUI only
turns mouse positions into image coordinates and shows the result.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from workbench.core.visualize import defect_region

Point = tuple[float, float]  # (x, y) in image pixels


def _as_u8(mask: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(mask, dtype=np.uint8)


def stroke_bounds(points: Sequence[Point], radius: float, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixel box (exclusive end) that a stroke can change, clipped to ``shape``."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    r = int(np.ceil(radius)) + 1
    x0 = max(0, int(np.floor(pts[:, 0].min())) - r)
    y0 = max(0, int(np.floor(pts[:, 1].min())) - r)
    x1 = min(shape[1], int(np.ceil(pts[:, 0].max())) + r + 1)
    y1 = min(shape[0], int(np.ceil(pts[:, 1].max())) + r + 1)
    return x0, y0, max(x0, x1), max(y0, y1)


def paint_stroke(mask: np.ndarray, points: Sequence[Point], radius: float, value: bool = True) -> np.ndarray:
    """Paint (``value`` True, brush) or erase (False, eraser) a round stroke through ``points``
    into ``mask`` in place; returns the mask. ``radius`` is in image pixels (>= 0.5)."""
    if not len(points):
        return mask
    h, w = mask.shape
    x0, y0, x1, y1 = stroke_bounds(points, radius, (h, w))
    if x1 <= x0 or y1 <= y0:
        return mask
    # A pixel is painted when its centre lies within ``radius`` of the polyline: exact and
    # symmetric, unlike OpenCV's thick lines whose width rounds up.
    ys, xs = np.mgrid[y0:y1, x0:x1]
    px, py = xs.astype(np.float64), ys.astype(np.float64)
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    segments = list(zip(pts, pts[1:])) if len(pts) > 1 else [(pts[0], pts[0])]
    canvas = np.zeros(px.shape, bool)
    r2 = float(radius) ** 2 + 1e-9
    for a, b in segments:
        d = b - a
        length2 = float(d @ d)
        t = 0.0 if length2 == 0 else np.clip(((px - a[0]) * d[0] + (py - a[1]) * d[1]) / length2, 0.0, 1.0)
        canvas |= (px - (a[0] + t * d[0])) ** 2 + (py - (a[1] + t * d[1])) ** 2 <= r2
    mask[y0:y1, x0:x1][canvas] = bool(value)
    return mask


def fill_polygon(mask: np.ndarray, points: Sequence[Point], value: bool = True) -> np.ndarray:
    """Fill the closed polygon ``points`` into ``mask`` in place (needs 3 points or more)."""
    if len(points) < 3:
        return mask
    canvas = np.zeros(mask.shape, np.uint8)
    poly = np.round(np.asarray(points, np.float64)).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(canvas, [poly], 1, lineType=cv2.LINE_8)
    mask[canvas > 0] = bool(value)
    return mask


def fill_from_map(mask: np.ndarray, amap: np.ndarray, threshold: float,
                  seed: Point | None = None, min_area: int = 0) -> np.ndarray:
    """Add the model's thresholded defect region (``amap >= threshold`` at mask resolution)
    to ``mask`` in place. With ``seed`` only the connected blob under that point is added
    (nothing when the point is below threshold)."""
    region = defect_region(np.asarray(amap, np.float32), float(threshold), mask.shape, min_area)
    if seed is not None:
        x, y = int(round(seed[0])), int(round(seed[1]))
        if not (0 <= y < region.shape[0] and 0 <= x < region.shape[1]) or not region[y, x]:
            return mask
        _n, labels = cv2.connectedComponents(_as_u8(region), connectivity=8)
        region = labels == labels[y, x]
    mask |= region
    return mask


def mask_contours(mask: np.ndarray) -> list[np.ndarray]:
    """Outer and hole boundaries of ``mask`` as (N, 2) float arrays of (x, y) points.

    Points are the centres of the boundary pixels in image coordinates, where pixel (i, j)
    covers [i, i+1) x [j, j+1), hence the half-pixel shift from OpenCV's integer indices."""
    if mask is None or not np.any(mask):
        return []
    contours, _ = cv2.findContours(_as_u8(mask), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1, 2).astype(np.float64) + 0.5 for c in contours if len(c)]


def region_contours(amap: np.ndarray, threshold: float, shape: tuple[int, int],
                    min_area: int = 0) -> list[np.ndarray]:
    """Outline of the thresholded model region at image resolution ``shape`` (H, W)."""
    return mask_contours(defect_region(np.asarray(amap, np.float32), float(threshold), shape, min_area))


def pack_mask(mask: np.ndarray) -> tuple[tuple[int, int], bytes]:
    """Compact copy (1 bit per pixel) for undo history: (shape, bytes)."""
    return mask.shape, np.packbits(mask.astype(bool), axis=None).tobytes()


def unpack_mask(packed: tuple[tuple[int, int], bytes]) -> np.ndarray:
    shape, data = packed
    n = int(shape[0]) * int(shape[1])
    return np.unpackbits(np.frombuffer(data, np.uint8), count=n).astype(bool).reshape(shape)
