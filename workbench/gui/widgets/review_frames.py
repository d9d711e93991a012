"""What the review viewer shows for one image, prepared off the GUI thread and cached.

A :class:`ReviewFrame` holds the decoded image, the per-dataset normalised heat map already
coloured at image size, the outline of the model's thresholded region and the current mask
(reviewed, else the dataset's). :func:`render_frame` builds one with core calls only; the
:class:`FrameLoader` runs it in a pool thread (newest request first, so scrolling fast never
queues up stale work) and an LRU cache keeps recent frames, so stepping back and forth and
the prefetched next image show at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, QPointF
from PySide6.QtGui import QImage, QPainterPath, QPolygonF

from workbench.core.data import ImageRecord, read_image, read_mask
from workbench.core.data.io import resize_mask
from workbench.core.calibration.policy import InspectionPolicy
from workbench.core.labels import load_mask, mask_contours, region_contours
from workbench.core.visualize import MapScale, heat_overlay
from workbench.gui.imaging import BackgroundImageLoader, LruCache, rgb_to_qimage


COLORMAPS = {  # shown name -> OpenCV colormap
    "Jet": cv2.COLORMAP_JET,
    "Turbo": cv2.COLORMAP_TURBO,
    "Inferno": cv2.COLORMAP_INFERNO,
    "Magma": cv2.COLORMAP_MAGMA,
    "Viridis": cv2.COLORMAP_VIRIDIS,
    "Hot": cv2.COLORMAP_HOT,
}


@dataclass
class MapSettings:
    """How maps of the active model are shown: per-dataset scale and pixel threshold."""

    scale: MapScale
    pixel_threshold: float
    colormap: int = cv2.COLORMAP_JET
    min_area: int = 0
    policy: InspectionPolicy | None = None  # when set, outlines follow its decision (min area, ROI/ignore)


@dataclass
class ReviewFrame:
    """Everything the viewer draws for one image; built in a pool thread (QImage and
    QPainterPath are plain values there), so showing it costs the GUI thread ~nothing."""

    key: str
    image: QImage  # RGB32: drawn as is, no conversion at paint time
    shape: tuple[int, int]  # (H, W)
    heat: QImage | None = None  # coloured map at image size, RGB32 (None: no prediction)
    region: list[np.ndarray] = field(default_factory=list)  # model region outline(s), image coords
    region_path: QPainterPath = field(default_factory=QPainterPath)
    mask: np.ndarray | None = None  # bool (H, W): reviewed mask, else the dataset's, else None
    mask_source: str = "none"  # "reviewed", "dataset" or "none"
    mask_path: QPainterPath | None = None  # outline of ``mask`` (None: compute when shown)
    amap: np.ndarray | None = None  # raw map (model resolution) for fill-from-heatmap


def contours_path(contours) -> QPainterPath:
    """Closed polygons (image coordinates) as one path for an outline item."""
    path = QPainterPath()
    for c in contours:
        if len(c):
            path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in c]))
            path.closeSubpath()
    return path


def _rgb32(rgb: np.ndarray) -> QImage:
    return rgb_to_qimage(rgb).convertToFormat(QImage.Format.Format_RGB32)


def current_mask(record: ImageRecord, key: str, mask_dir: Path | None, shape: tuple[int, int]):
    """(mask, source): the reviewed mask if drawn, else the dataset's ground truth."""
    mask = load_mask(mask_dir, key) if mask_dir is not None else None
    if mask is not None:
        return (mask if mask.shape == shape else resize_mask(mask, shape)), "reviewed"
    if record.mask_path is not None:
        return read_mask(record.mask_path, shape), "dataset"
    return None, "none"


def render_frame(record: ImageRecord, key: str, amap: np.ndarray | None, settings: MapSettings | None,
                 mask_dir: Path | None, score: float | None = None) -> ReviewFrame:
    """Pool thread: decode, colour the map, outline the model's region, load the mask."""
    image = read_image(record.path)
    h, w = image.shape[:2]
    frame = ReviewFrame(key, _rgb32(image), (h, w))
    if amap is not None and settings is not None:
        heat = heat_overlay(image, settings.scale.normalize(amap), alpha=1.0, colormap=settings.colormap)
        frame.heat = _rgb32(heat)
        if settings.policy is not None and score is not None:
            # the same rule as predict and the ONNX runtime: OK parts get no outline
            frame.region = mask_contours(settings.policy.decide(score, amap, (h, w)).region)
        else:
            frame.region = region_contours(amap, settings.pixel_threshold, (h, w), settings.min_area)
        frame.region_path = contours_path(frame.region)
        frame.amap = amap
    frame.mask, frame.mask_source = current_mask(record, key, mask_dir, (h, w))
    frame.mask_path = contours_path(mask_contours(frame.mask)) if frame.mask is not None else QPainterPath()
    return frame


class FrameLoader(BackgroundImageLoader):
    """Renders review frames in a pool thread (the shared loader, newest first); only a few
    may wait: past that the user has moved on."""

    def __init__(self, threads: int = 1, max_pending: int = 6, parent: QObject | None = None) -> None:
        super().__init__(threads, max_pending, parent)


class FrameCache(LruCache):
    """Recent frames by (image key, render generation)."""
