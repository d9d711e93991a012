"""The inspected area as a user draws it: a painted mask plus polygons, per dataset.

The inspection policy (:mod:`.policy`) only needs a binary ROI / ignore mask. The workspace
keeps how it was drawn, so reopening the workspace brings back the same area and a polygon
stays a polygon (its corners, not only its pixels): an :class:`InspectedArea` holds the
painted pixels and the polygons, each a list of ``(x, y)`` vertices in the original image's
pixel coordinates (pixel centres at integers), rasterised with OpenCV ``fillPoly`` into the
same binary mask (:meth:`InspectedArea.mask`).

Rule kept by :meth:`InspectedArea.with_mask`: the mask is always ``painted | polygons``; when
the eraser removes pixels of a polygon, that polygon no longer describes the area and is
dropped from the list (its remaining pixels stay painted).

Torch-free (NumPy, OpenCV, JSON), like the policy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

KINDS = ("roi", "ignore")
Polygon = tuple[tuple[float, float], ...]


class AreaError(ValueError):
    """An inspected area cannot be used (the message says what is wrong and what to do)."""


def clean_polygons(polygons: Any, what: str = "polygons") -> tuple[Polygon, ...]:
    """Polygons as tuples of float ``(x, y)`` vertices; AreaError for anything else (fewer than
    3 vertices, not numbers, not finite)."""
    out: list[Polygon] = []
    if polygons is None:
        return ()
    if not isinstance(polygons, (list, tuple)):
        raise AreaError(f"The {what} must be a list of vertex lists [[x, y], ...], got {type(polygons).__name__}.")
    for i, poly in enumerate(polygons):
        try:
            vertices = tuple((float(x), float(y)) for x, y in poly)
        except (TypeError, ValueError):
            raise AreaError(f"Polygon {i + 1} of the {what} is not a list of [x, y] number pairs.") from None
        if len(vertices) < 3:
            raise AreaError(f"Polygon {i + 1} of the {what} has {len(vertices)} vertices; a polygon needs 3 or more.")
        if not all(math.isfinite(v) for xy in vertices for v in xy):
            raise AreaError(f"Polygon {i + 1} of the {what} has a vertex that is not a finite number.")
        out.append(vertices)
    return tuple(out)


def rasterize_polygons(polygons: Sequence[Sequence[tuple[float, float]]], shape: tuple[int, int]) -> np.ndarray:
    """Bool mask of ``shape`` (H, W) with every polygon filled (OpenCV ``fillPoly``, vertices
    rounded to the nearest pixel: the same rule as the Review step's polygon tool)."""
    canvas = np.zeros((int(shape[0]), int(shape[1])), np.uint8)
    polys = [np.round(np.asarray(p, np.float64)).astype(np.int32).reshape(-1, 1, 2) for p in polygons if len(p) >= 3]
    if polys:
        cv2.fillPoly(canvas, polys, 1, lineType=cv2.LINE_8)
    return canvas.astype(bool)


@dataclass(frozen=True, eq=False)
class InspectedArea:
    """One ROI or ignore region as drawn: ``painted`` pixels (bool, ``shape``) and ``polygons``."""

    shape: tuple[int, int]
    painted: np.ndarray | None = field(default=None, repr=False)
    polygons: tuple[Polygon, ...] = ()

    def __post_init__(self) -> None:
        shape = tuple(int(v) for v in self.shape)
        if len(shape) != 2 or min(shape) < 1:
            raise AreaError(f"An inspected area needs an image size (height, width) >= 1, got {self.shape}.")
        object.__setattr__(self, "shape", shape)
        if self.painted is not None:
            painted = np.asarray(self.painted).astype(bool)
            if painted.shape != shape:
                raise AreaError(f"The painted mask is {painted.shape[1]}x{painted.shape[0]} px but the area is "
                                f"{shape[1]}x{shape[0]} px.")
            painted.setflags(write=False)
            object.__setattr__(self, "painted", painted)
        object.__setattr__(self, "polygons", clean_polygons(self.polygons))

    def mask(self) -> np.ndarray:
        """The binary mask (True = in the area): painted pixels and filled polygons."""
        out = rasterize_polygons(self.polygons, self.shape)
        if self.painted is not None:
            out |= self.painted
        return out

    @property
    def empty(self) -> bool:
        return not self.mask().any()

    def with_mask(self, mask: np.ndarray, new_polygons: Sequence[Sequence[tuple[float, float]]] = ()) -> "InspectedArea":
        """The area after an edit whose result is ``mask`` (``new_polygons``: polygons closed
        during the edit). Polygons that lost pixels (erased) are dropped; the rest stay."""
        mask = np.asarray(mask).astype(bool)
        kept = [p for p in (*self.polygons, *clean_polygons(list(new_polygons)))
                if not (rasterize_polygons([p], self.shape) & ~mask).any()]
        return InspectedArea(self.shape, mask, tuple(kept))

    @classmethod
    def from_mask(cls, mask: np.ndarray, polygons: Sequence[Sequence[tuple[float, float]]] = ()) -> "InspectedArea":
        mask = np.asarray(mask).astype(bool)
        return cls(mask.shape, np.zeros(mask.shape, bool), ()).with_mask(mask, polygons)

    # ------------------------------------------------------------------ storage
    def painted_png(self) -> bytes | None:
        """The painted pixels as a PNG (None when nothing is painted outside the polygons)."""
        if self.painted is None:
            return None
        rest = self.painted & ~rasterize_polygons(self.polygons, self.shape)
        if not rest.any():
            return None
        ok, png = cv2.imencode(".png", self.painted.astype(np.uint8) * 255)
        if not ok:
            raise OSError("Could not encode an inspected area as PNG")
        return png.tobytes()

    def polygons_json(self) -> str:
        return json.dumps([[list(v) for v in p] for p in self.polygons])

    @classmethod
    def from_stored(cls, shape: tuple[int, int], painted_png: bytes | None, polygons_json: str,
                    where: str = "the workspace") -> "InspectedArea":
        painted = None
        if painted_png:
            image = cv2.imdecode(np.frombuffer(painted_png, np.uint8), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise AreaError(f"The painted area stored in {where} is not a readable PNG; draw it again.")
            painted = image > 127
        try:
            polygons = json.loads(polygons_json or "[]")
        except json.JSONDecodeError as exc:
            raise AreaError(f"The polygons stored in {where} are not valid JSON ({exc}); draw them again.") from None
        return cls(shape, painted, clean_polygons(polygons, f"polygons in {where}"))


__all__ = ["AreaError", "InspectedArea", "KINDS", "Polygon", "clean_polygons", "rasterize_polygons"]
