"""Why was this flagged: the nearest normal patch, and what each feature stage contributes.

For memory-bank methods (PatchCore, SPADE) a location's anomaly score *is* its distance to the
nearest normal patch in the bank, so the most honest explanation is to show that patch:
which training image it came from, where, and how far away it is. :func:`explain_image` does
that for the highest-scoring location of an image or for any location (``xy`` in the image's
own pixel coordinates); the Review step, ``workbench explain`` and the inspection report all
call it.

For the distribution methods (PaDiM, DFM) there is no nearest patch, but their map splits
exactly into one term per backbone stage (PaDiM: ``delta_s . (S^-1 delta)_s``; DFM: the
squared residual of each stage's channels), so :func:`stage_maps` shows what each stage adds
to the map. Methods that score with a trained network (STFPM, FastFlow, ...) have no such
decomposition and get neither; :data:`EVIDENCE_METHODS` and :data:`STAGE_MAP_METHODS` say
which do.

Usage (the report's entry point)::

    images, info = explain_image(model, "part.png")            # worst location
    images, info = explain_image(model, "part.png", xy=(120, 64))
    # images: {"test_patch", "normal_patch", "side_by_side"} RGB uint8 arrays
    #         ("normal_patch" missing when the training image is not readable any more)
    # info:   JSON-ready dict (see Evidence.to_json)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

EVIDENCE_METHODS = ("patchcore", "spade")
STAGE_MAP_METHODS = ("padim", "dfm")
CONTEXT_CELLS = 3          # grid cells shown around the patch on each side
PANEL_SIZE = 192           # pixels of each crop in the side-by-side picture


class EvidenceError(ValueError):
    """The model cannot give evidence (method, or a package written before it was recorded)."""


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in an image's own pixels


@dataclass
class Evidence:
    """A test location and its nearest normal patch, in both images' original coordinates."""

    method: str
    image: str | None
    image_size: tuple[int, int]            # (width, height)
    location: tuple[int, int]              # (x, y) centre of the test patch
    test_box: Box
    chosen_by: str                          # "highest-scoring patch" or "given location"
    distance: float
    grid: tuple[int, int]
    cell: tuple[int, int]
    memory_entry: int
    train_index: int | None
    train_path: str | None
    train_size: tuple[int, int] | None = None
    train_location: tuple[int, int] | None = None
    train_box: Box | None = None
    notes: list[str] = field(default_factory=list)
    images: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        nearest = None
        if self.train_index is not None:
            nearest = {"train_index": self.train_index, "path": self.train_path,
                       "image_size": list(self.train_size) if self.train_size else None,
                       "x": self.train_location[0] if self.train_location else None,
                       "y": self.train_location[1] if self.train_location else None,
                       "box": list(self.train_box) if self.train_box else None}
        return {"method": self.method, "image": self.image, "image_size": list(self.image_size),
                "x": self.location[0], "y": self.location[1], "box": list(self.test_box),
                "chosen_by": self.chosen_by, "distance": self.distance, "grid": list(self.grid),
                "cell": list(self.cell), "memory_entry": self.memory_entry, "nearest_normal": nearest,
                "notes": list(self.notes)}


def cell_box(cell: tuple[int, int], grid: tuple[int, int], size: tuple[int, int]) -> Box:
    """Pixel box of grid ``cell`` (row, col) in an image of ``size`` (width, height): the model
    sees the image stretched to a square, so each axis scales on its own."""
    (r, c), (gh, gw), (w, h) = cell, grid, size
    return (int(c * w / gw), int(r * h / gh), max(int(c * w / gw) + 1, int(round((c + 1) * w / gw))),
            max(int(r * h / gh) + 1, int(round((r + 1) * h / gh))))


def location_cell(xy: tuple[float, float], grid: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """Grid cell (row, col) holding pixel ``xy`` of an image of ``size`` (width, height)."""
    (x, y), (gh, gw), (w, h) = xy, grid, size
    if not (0 <= x < w and 0 <= y < h):
        raise EvidenceError(f"Location x={x:g}, y={y:g} is outside the image ({w} x {h} pixels).")
    return min(gh - 1, int(y * gh / h)), min(gw - 1, int(x * gw / w))


def _box_centre(box: Box) -> tuple[int, int]:
    return (box[0] + box[2]) // 2, (box[1] + box[3]) // 2


def patch_crop(image: np.ndarray, box: Box, grid: tuple[int, int], colour=(255, 40, 40)) -> np.ndarray:
    """The patch with ``CONTEXT_CELLS`` cells of surroundings, box outlined, at PANEL_SIZE."""
    import cv2

    h, w = image.shape[:2]
    pad_x, pad_y = CONTEXT_CELLS * w / grid[1], CONTEXT_CELLS * h / grid[0]
    x0, y0 = max(0, int(box[0] - pad_x)), max(0, int(box[1] - pad_y))
    x1, y1 = min(w, int(box[2] + pad_x)), min(h, int(box[3] + pad_y))
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    scale = PANEL_SIZE / max(crop.shape[:2])
    crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                      interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA)
    bx0, by0 = round((box[0] - x0) * scale), round((box[1] - y0) * scale)
    bx1, by1 = round((box[2] - x0) * scale) - 1, round((box[3] - y0) * scale) - 1
    cv2.rectangle(crop, (bx0, by0), (max(bx0, bx1), max(by0, by1)), colour, 2)
    return crop


def side_by_side(test: np.ndarray, normal: np.ndarray | None, caption: str) -> np.ndarray:
    """Test patch | nearest normal patch, each on a PANEL_SIZE square, with a caption line."""
    import cv2

    gap, bar = 8, 22
    canvas = np.full((PANEL_SIZE + bar, 2 * PANEL_SIZE + gap, 3), 255, np.uint8)
    for i, crop in enumerate((test, normal)):
        x = i * (PANEL_SIZE + gap)
        if crop is None:
            cv2.putText(canvas, "training image", (x + 30, PANEL_SIZE // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (90, 90, 90), 1, cv2.LINE_AA)
            cv2.putText(canvas, "not available", (x + 36, PANEL_SIZE // 2 + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (90, 90, 90), 1, cv2.LINE_AA)
            continue
        canvas[:crop.shape[0], x:x + crop.shape[1]] = crop
    cv2.putText(canvas, caption[:60], (4, PANEL_SIZE + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    return canvas


def training_files(model: Any) -> list[dict[str, Any]]:
    """The training file list a package recorded ([] when none: trained from arrays, or old)."""
    files = model.metadata.get("training_files")
    return files if isinstance(files, list) else []


def explain_image(model: Any, image: str | Path | np.ndarray, xy: tuple[float, float] | None = None
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Images and a JSON-ready dict of the nearest normal patch (see :func:`nearest_normal_evidence`)."""
    evidence = nearest_normal_evidence(model, image, xy)
    return evidence.images, evidence.to_json()


def nearest_normal_evidence(model: Any, image: str | Path | np.ndarray,
                            xy: tuple[float, float] | None = None) -> Evidence:
    """The nearest normal patch of the test patch at ``xy`` (the image's own pixels) or, without
    ``xy``, of the highest-scoring patch. ``model`` is a loaded PatchCore or SPADE model."""
    from workbench.core.data.io import read_image

    if model.name not in EVIDENCE_METHODS or not hasattr(model, "nearest_normal"):
        raise EvidenceError(f"{model.title} has no memory bank, so there is no nearest normal patch to show; "
                            f"evidence needs PatchCore or SPADE. For PaDiM and DFM use the per-stage maps.")
    if model.name == "patchcore" and "memory_bank" not in model.metadata:
        raise EvidenceError("This PatchCore package was saved before the workbench recorded where each "
                            "memory-bank entry came from, so it cannot show the nearest normal patch. "
                            "Retrain it (same data and parameters give the same scores) to get evidence.")
    path = None if isinstance(image, np.ndarray) else str(image)
    pixels = image if isinstance(image, np.ndarray) else read_image(image)
    size = (pixels.shape[1], pixels.shape[0])
    grid_hint = _grid(model)
    cell = None if xy is None else location_cell(xy, grid_hint, size)
    found = model.nearest_normal(pixels, cell)
    test_box = cell_box(found.cell, found.grid, size)
    files = training_files(model)
    evidence = Evidence(model.name, path, size, _box_centre(test_box), test_box,
                        "highest-scoring patch" if xy is None else "given location", found.distance,
                        found.grid, found.cell, found.entry, found.train_index, None)
    normal = None
    if found.train_index is None:
        evidence.notes.append("this memory entry has no recorded source (added to an older package)")
    elif found.train_index >= len(files):
        evidence.notes.append("the package has no training file list (trained from images in memory)")
    else:
        record = files[found.train_index]
        evidence.train_path = record.get("path")
        normal = _training_crop(evidence, record, found)
    evidence.images["test_patch"] = patch_crop(pixels, test_box, found.grid)
    if normal is not None:
        evidence.images["normal_patch"] = normal
    caption = f"distance {found.distance:.3g}" + (f"  train #{found.train_index}" if found.train_index is not None
                                                   else "")
    evidence.images["side_by_side"] = side_by_side(evidence.images["test_patch"], normal, caption)
    return evidence


def _training_crop(evidence: Evidence, record: dict[str, Any], found: Any) -> np.ndarray | None:
    from workbench.core.data.io import read_image
    from workbench.core.files import file_sha256

    path = Path(str(record.get("path", "")))
    try:
        train = read_image(path)
    except (OSError, ValueError) as exc:
        evidence.notes.append(f"training image {path} cannot be read any more ({exc}); its position is "
                              "still given")
        return None
    if record.get("sha256") and file_sha256(path) != record["sha256"]:
        evidence.notes.append(f"training image {path} changed since training (checksum differs)")
    evidence.train_size = (train.shape[1], train.shape[0])
    evidence.train_box = cell_box(found.train_cell, found.grid, evidence.train_size)
    evidence.train_location = _box_centre(evidence.train_box)
    return patch_crop(train, evidence.train_box, found.grid, colour=(40, 170, 40))


def _grid(model: Any) -> tuple[int, int]:
    if model.name == "spade":
        return model.grid, model.grid
    grid = model.metadata["memory_bank"]["grid"]
    return int(grid[0]), int(grid[1])


# ----------------------------------------------------------------------------- per-stage maps
def stage_maps(model: Any, image: np.ndarray) -> dict[str, np.ndarray]:
    """What each backbone stage adds to the anomaly map (before smoothing), at the model's input
    size: ``{"stage 2": map, "stage 3": map}``; the maps sum to the unsmoothed squared-distance
    map. PaDiM and DFM only (:data:`STAGE_MAP_METHODS`)."""
    if model.name not in STAGE_MAP_METHODS or not hasattr(model, "stage_contributions"):
        raise EvidenceError(f"{model.title}: per-stage maps exist for {', '.join(STAGE_MAP_METHODS)} "
                            "(their map is a sum over stages); evidence by nearest normal patch exists for "
                            f"{', '.join(EVIDENCE_METHODS)}; the other methods score with a trained network "
                            "whose map does not split by stage.")
    return model.stage_contributions(image)


__all__ = ["EVIDENCE_METHODS", "STAGE_MAP_METHODS", "Evidence", "EvidenceError", "explain_image",
           "nearest_normal_evidence", "stage_maps"]
