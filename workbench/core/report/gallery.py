"""The report's gallery: the worst escapes and false alarms, each as a small heat-map overlay.

An *escape* is a defective image the policy passed as OK (worst = lowest score: the one the
threshold misses by most); a *false alarm* a good image it rejected as NG (worst = highest
score). Overlays use the heat-map scale of the model (normalised per dataset, never per image,
:mod:`workbench.core.visualize`), the policy's defect outline in red and the ground-truth
outline in green, and are embedded as base64 PNG.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from workbench.core.calibration.policy import InspectionPolicy, MapScale
from workbench.core.data import ImageRecord, read_image, read_mask
from workbench.core.data.io import ImageReadError
from workbench.core.visualize import annotate, draw_outline, heat_overlay

THUMB_PX = 280  # longest side of a gallery image
GALLERY_SIZE = 6  # per kind
GT_COLOUR = (40, 200, 60)
FOUND_COLOUR = (230, 30, 30)


@dataclass(frozen=True)
class GalleryItem:
    name: str
    label: str
    score: float
    verdict: str
    png_base64: str  # empty when the image could not be read
    note: str = ""


def png_base64(rgb: np.ndarray, max_side: int = THUMB_PX) -> str:
    """An RGB uint8 image, shrunk to ``max_side``, as base64 PNG (for ``data:`` URLs)."""
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ValueError("could not encode a gallery image as PNG")
    return base64.b64encode(data.tobytes()).decode("ascii")


def file_base64(path: Path) -> str:
    """A PNG file already on disk (e.g. a predict run's overlay), shrunk like the others."""
    return png_base64(read_image(path))


def worst_indices(labels: np.ndarray, verdicts: np.ndarray, scores: np.ndarray, n: int = GALLERY_SIZE
                  ) -> tuple[list[int], list[int]]:
    """(escapes: defective and OK, lowest score first; false alarms: good and NG, highest first)."""
    labels = np.asarray(labels, bool)
    verdicts = np.asarray(verdicts, dtype=object)
    scores = np.asarray(scores, np.float64)
    escapes = np.flatnonzero(labels & (verdicts == "OK"))
    alarms = np.flatnonzero(~labels & ((verdicts == "NG") | (verdicts == "error")))
    escapes = escapes[np.argsort(scores[escapes], kind="stable")][:n]
    alarms = alarms[np.argsort(-np.nan_to_num(scores[alarms], nan=np.inf), kind="stable")][:n]
    return [int(i) for i in escapes], [int(i) for i in alarms]


def overlay_item(record: ImageRecord, score: float, amap: np.ndarray, policy: InspectionPolicy,
                 scale: MapScale, name: str) -> GalleryItem:
    """One gallery image: heat map, the policy's outline (red) and the ground truth (green)."""
    try:
        image = read_image(record.path)
    except (ImageReadError, OSError) as exc:
        return GalleryItem(name, record.label, float(score), "", "", f"cannot read the image: {exc}")
    shape = image.shape[:2]
    decision = policy.decide(score, amap, shape)
    vis = heat_overlay(image, scale.normalize(np.nan_to_num(amap, nan=scale.threshold)), alpha=0.45)
    if record.mask_path is not None:
        try:
            vis = draw_outline(vis, read_mask(record.mask_path, shape), GT_COLOUR)
        except (ImageReadError, OSError, ValueError):
            pass  # the gallery still shows the heat map; metrics already counted the mask
    if decision.region.any():
        vis = draw_outline(vis, decision.region, FOUND_COLOUR)
    vis = annotate(vis, f"{decision.score:.4g} {decision.verdict}", decision.verdict)
    return GalleryItem(name, record.label, float(decision.score), decision.verdict, png_base64(vis))


__all__ = ["GALLERY_SIZE", "GalleryItem", "file_base64", "overlay_item", "png_base64", "worst_indices"]
