"""The inspection policy: the one rule that turns a model's raw output into a decision.

Everything that shows or stores a verdict (``predict``, ``evaluate``, the GUI's Threshold and
Review steps, folder inference, the exported ONNX package) goes through
:class:`InspectionPolicy`, and this module is the only code that reads or writes the
``thresholds`` part of a package's ``model.json``. So a part that is NG in Review is NG in the
CSV and on the line.

The decision rule (scores are the model's raw units; higher = more anomalous):

* ``score >= ng_threshold`` -> **NG**;
* with an ``ok_threshold`` (<= ng_threshold): ``score < ok_threshold`` -> **OK**, in between
  -> **REVIEW** (a person looks); without one, everything below the NG threshold is OK;
* a score that is not finite (NaN, inf from a broken image or model) is never OK: its
  verdict is ``error``; a policy without an NG threshold gives the verdict ``""`` (none).

The outline (defect region) is ``map >= pixel_threshold`` at the original image's
resolution, inside the inspected area, with 8-connected blobs smaller than
``min_defect_area`` pixels of the original image removed; ``regions`` and
``defect_area_px`` count what is left. Without a pixel threshold, the highest pixel score
seen on held-out good images is used (nothing normal was ever above it).

Inspected area: an optional region of interest (inspect only inside) and ignore mask (never
inspect there), binary images in the original image's coordinates stored as PNG files
inside the package folder. Images of another size get the masks resized (nearest
neighbour); the decision says so. Ignored pixels never raise the image score: the score is
lowered by how much the ignored pixels raised the map's peak,
``score - (max(map) - max(map[inspected]))`` (maps resized to the image). For methods whose
image score is the map's maximum (most of them) this is exactly the maximum over the
inspected pixels. For methods whose image score is computed otherwise (PatchCore's
re-weighted score, DFM's feature reconstruction error, CutPaste's density, GANomaly's
latent score), the same shift is applied: the score is unchanged when the map's peak is
inside the inspected area and lowered by the ignored peak's excess otherwise; it never
rises. Ignored pixels never count in outlines, areas, pixel AUROC or PRO.

This module is torch-free (NumPy, OpenCV, JSON): the line-side ONNX runtime uses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

from workbench.core.model_versions import clear_recheck
from workbench.core.files import atomic_write_bytes, atomic_write_json
from workbench.core.formats import (CalibrationJson, ExportedPackageError, ModelPackageError, ThresholdsJson,
                                    read_json_file, validate)

META_FILE = "model.json"
POLICY_VERSION = 2
ROI_FILE = "roi_mask.png"
IGNORE_FILE = "ignore_mask.png"
NORMALIZATIONS = ("raw", "minmax", "quantile")
OK, REVIEW, NG, ERROR, UNDECIDED = "OK", "REVIEW", "NG", "error", ""


class PolicyError(ValueError):
    """A policy or its mask files cannot be used (the message says which file and why)."""


# ----------------------------------------------------------------------------- scales
@dataclass(frozen=True)
class MapScale:
    """Per-dataset heat-map scale: 0 at the median good pixel, 0.5 at the outline threshold,
    1 at twice that distance (field notes: per-image scaling paints good images red)."""

    low: float
    threshold: float

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], fallback_maps: np.ndarray | None = None) -> "MapScale":
        """The scale of a package's policy (its pixel statistics and pixel threshold)."""
        return InspectionPolicy.from_metadata(metadata, masks=False).map_scale(fallback_maps)

    def normalize(self, amap: np.ndarray) -> np.ndarray:
        return np.clip((amap - self.low) / (2.0 * (self.threshold - self.low)), 0.0, 1.0).astype(np.float32)


def normalize_scores(scores: Any, kind: str, image_stats: Mapping[str, float] | None) -> np.ndarray:
    """Map raw scores to a comparable scale using statistics of held-out good images.

    ``minmax``: 0 at the lowest and 1 at the highest good score; ``quantile``: 0 at the median
    and 1 at the highest good score (robust to one low outlier). ``raw`` leaves scores alone.
    """
    scores = np.asarray(scores, np.float64)
    if kind == "raw":
        return scores
    if kind not in NORMALIZATIONS:
        raise ValueError(f"Unknown normalisation '{kind}'. Choose one of {', '.join(NORMALIZATIONS)}.")
    if not image_stats:
        raise ValueError("This model has no score statistics of good images; only 'raw' is available. "
                         "Retrain it to record them.")
    low = image_stats["min"] if kind == "minmax" else image_stats["p50"]
    span = max(image_stats["max"] - low, 1e-12)
    return (scores - low) / span


def denormalize(value: float, kind: str, image_stats: Mapping[str, float] | None) -> float:
    """Inverse of :func:`normalize_scores` for one value."""
    if kind == "raw":
        return float(value)
    if not image_stats:
        raise ValueError("This model has no score statistics of good images; only 'raw' is available.")
    low = image_stats["min"] if kind == "minmax" else image_stats["p50"]
    return float(low + value * max(image_stats["max"] - low, 1e-12))


# ----------------------------------------------------------------------------- decision
@dataclass(frozen=True, eq=False)
class Decision:
    """What the policy says about one image."""

    verdict: str            # OK / REVIEW / NG, "error" (non-finite score) or "" (no threshold)
    score: float            # the image score the verdict was taken on (after ROI/ignore)
    raw_score: float        # the model's score
    region: np.ndarray      # bool (H, W) at the image's resolution: the outlined defect pixels
    regions: int            # connected defect regions after the minimum area
    defect_area_px: int     # defect pixels after the minimum area (0 for OK parts)
    margin: float | None    # how far inside its verdict's band the score lies (>= 0), in raw units
    mask_resized: bool      # the ROI/ignore masks were resized to this image's size


@dataclass(frozen=True, eq=False)
class InspectionPolicy:
    """Thresholds, inspected area and display scales of one model; frozen, JSON-serialisable
    (masks as PNG files next to ``model.json``)."""

    ng_threshold: float | None = None
    ok_threshold: float | None = None
    pixel_threshold: float | None = None
    min_defect_area: int = 0
    roi: np.ndarray | None = field(default=None, repr=False)     # True = inspect (None: everywhere)
    ignore: np.ndarray | None = field(default=None, repr=False)  # True = never inspect
    normalization: str = "raw"
    source: str = ""
    image_stats: Mapping[str, float] | None = field(default=None, repr=False)  # good-image scores
    pixel_stats: Mapping[str, float] | None = field(default=None, repr=False)  # good-image pixels

    def __post_init__(self) -> None:
        for name in ("ng_threshold", "ok_threshold", "pixel_threshold"):
            value = getattr(self, name)
            if value is not None:
                if not math.isfinite(float(value)):
                    raise PolicyError(f"The {name.replace('_', ' ')} must be a finite number, got {value}.")
                object.__setattr__(self, name, float(value))
        if self.ok_threshold is not None:
            if self.ng_threshold is None:
                raise PolicyError("An OK threshold needs an NG threshold above it.")
            if self.ok_threshold > self.ng_threshold:
                raise PolicyError(f"The OK threshold ({self.ok_threshold:.6g}) must not be above the NG "
                                  f"threshold ({self.ng_threshold:.6g}); scores between them go to REVIEW.")
        if int(self.min_defect_area) < 0:
            raise PolicyError(f"The minimum defect area must be >= 0 pixels, got {self.min_defect_area}.")
        object.__setattr__(self, "min_defect_area", int(self.min_defect_area))
        if self.normalization not in NORMALIZATIONS:
            raise PolicyError(f"Unknown score scale '{self.normalization}'. Choose one of {', '.join(NORMALIZATIONS)}.")
        for name in ("roi", "ignore"):
            mask = getattr(self, name)
            if mask is not None:
                mask = np.asarray(mask).astype(bool)
                if mask.ndim != 2 or min(mask.shape) < 1:
                    raise PolicyError(f"The {name} mask must be a 2-D image, got shape {mask.shape}.")
                mask.setflags(write=False)
                object.__setattr__(self, name, mask)
        if self.roi is not None and not self.roi.any():
            raise PolicyError("The region of interest is empty: paint the area to inspect in white.")
        if self.roi is not None and self.ignore is not None and self.roi.shape != self.ignore.shape:
            raise PolicyError(f"The ROI ({self.roi.shape[1]}x{self.roi.shape[0]}) and ignore mask "
                              f"({self.ignore.shape[1]}x{self.ignore.shape[0]}) must have the same size.")

    # --------------------------------------------------------------- changes
    def replace(self, **changes: Any) -> "InspectionPolicy":
        return dataclasses.replace(self, **changes)

    @property
    def has_band(self) -> bool:
        return self.ok_threshold is not None and self.ng_threshold is not None \
            and self.ok_threshold < self.ng_threshold

    @property
    def has_masks(self) -> bool:
        return self.roi is not None or self.ignore is not None

    def same_area(self, other: "InspectionPolicy | None") -> bool:
        """Whether ``other`` inspects the same pixels (same ROI and ignore masks): then image
        scores and pixel metrics are the same under both."""
        mine = (self.roi, self.ignore)
        theirs = (None, None) if other is None else (other.roi, other.ignore)
        return all((x is None and y is None) or (x is not None and y is not None and x.shape == y.shape
                                                 and bool((x == y).all())) for x, y in zip(mine, theirs))

    # --------------------------------------------------------------- the rule
    def verdict(self, score: float) -> str:
        """OK / REVIEW / NG for an image score already corrected for the inspected area."""
        score = float(score)
        if not math.isfinite(score):
            return ERROR
        if self.ng_threshold is None:
            return UNDECIDED
        if score >= self.ng_threshold:
            return NG
        if self.ok_threshold is not None and score >= self.ok_threshold:
            return REVIEW
        return OK

    def verdicts(self, scores: Any) -> np.ndarray:
        """:meth:`verdict` for many scores at once (array of strings), vectorised: the Threshold
        step calls it on every move of a threshold."""
        scores = np.asarray(scores, np.float64).ravel()
        out = np.full(scores.shape, OK if self.ng_threshold is not None else UNDECIDED, dtype=object)
        if self.ng_threshold is not None:
            if self.ok_threshold is not None:
                out[scores >= self.ok_threshold] = REVIEW
            out[scores >= self.ng_threshold] = NG
        out[~np.isfinite(scores)] = ERROR
        return out

    def margin(self, score: float) -> float | None:
        """Distance (raw units, >= 0) from ``score`` to the nearest edge of its verdict's band."""
        verdict = self.verdict(score)
        if verdict in (ERROR, UNDECIDED):
            return None
        ng = float(self.ng_threshold)  # type: ignore[arg-type]
        if verdict == NG:
            return float(score) - ng
        if verdict == REVIEW:
            return min(float(score) - float(self.ok_threshold), ng - float(score))  # type: ignore[arg-type]
        edge = self.ok_threshold if self.ok_threshold is not None else ng
        return float(edge) - float(score)

    def inspected(self, shape: tuple[int, int]) -> tuple[np.ndarray | None, bool]:
        """(mask of inspected pixels at ``shape`` or None for all, whether masks were resized)."""
        if not self.has_masks:
            return None, False
        inspect = self.roi if self.roi is not None else np.ones_like(self.ignore, bool)  # type: ignore[arg-type]
        if self.ignore is not None:
            inspect = inspect & ~self.ignore
        shape = (int(shape[0]), int(shape[1]))
        if inspect.shape == shape:
            return inspect, False
        resized = cv2.resize(inspect.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
        return resized.astype(bool), True

    def image_score(self, score: float, amap: np.ndarray, image_shape: tuple[int, int]) -> float:
        """The image score with ignored pixels taken out (see the module docstring)."""
        inspect, _ = self.inspected(image_shape)
        score = float(score)
        if inspect is None or not math.isfinite(score):
            return score
        full = _resize(amap, image_shape)
        if not inspect.any():
            return -math.inf  # nothing inspected in this image: nothing can be found
        return score - (float(full.max()) - float(full[inspect].max()))

    @property
    def outline_threshold(self) -> float | None:
        """Pixel score from which a pixel is outlined as defective."""
        if self.pixel_threshold is not None:
            return self.pixel_threshold
        if self.pixel_stats and "max" in self.pixel_stats:
            return float(self.pixel_stats["max"])
        return None

    def decide(self, score: float, amap: np.ndarray, image_shape: tuple[int, int] | None = None) -> Decision:
        """The decision for one image: its raw ``score``, anomaly ``amap`` and (H, W) size."""
        amap = np.asarray(amap, np.float32)
        shape = tuple(int(v) for v in (image_shape or amap.shape)[:2])
        inspect, resized = self.inspected(shape)  # type: ignore[arg-type]
        raw = float(score)
        effective = self.image_score(raw, amap, shape)  # type: ignore[arg-type]
        verdict = self.verdict(effective)
        region = np.zeros(shape, bool)
        n_regions = 0
        threshold = self.outline_threshold
        if verdict not in (OK,) and threshold is not None:
            region, n_regions = defect_region(amap, threshold, shape, self.min_defect_area, inspect)  # type: ignore[arg-type]
        return Decision(verdict, effective, raw, region, n_regions, int(region.sum()), self.margin(effective),
                        resized)

    def map_scale(self, fallback_maps: np.ndarray | None = None) -> MapScale:
        """The per-dataset heat-map scale (from good images' pixel statistics)."""
        if self.pixel_stats:
            low = float(self.pixel_stats["p50"])
            thr = float(self.outline_threshold)  # type: ignore[arg-type]
        elif fallback_maps is not None and np.asarray(fallback_maps).size:
            low, thr = float(np.quantile(fallback_maps, 0.5)), float(np.quantile(fallback_maps, 0.99))
            if self.pixel_threshold is not None:
                thr = self.pixel_threshold
        else:
            raise PolicyError("No score statistics in the model to scale heat maps; retrain or calibrate it.")
        return MapScale(low, thr if thr > low else low + 1e-6)

    def display(self, raw: Any) -> np.ndarray:
        """Raw scores on the score scale shown to users."""
        return normalize_scores(raw, self.normalization, self.image_stats)

    # --------------------------------------------------------------- storage
    def to_json(self) -> dict[str, Any]:
        """The ``thresholds`` block of ``model.json`` (masks by file name)."""
        out: dict[str, Any] = {"version": POLICY_VERSION, "min_defect_area": self.min_defect_area,
                               "normalization": self.normalization}
        if self.ng_threshold is not None:
            out["image"] = {"value": self.ng_threshold, "source": self.source}
        if self.ok_threshold is not None:
            out["ok"] = {"value": self.ok_threshold, "source": self.source}
        if self.pixel_threshold is not None:
            out["pixel"] = {"value": self.pixel_threshold, "source": self.source}
        if self.roi is not None:
            out["roi_mask"] = ROI_FILE
        if self.ignore is not None:
            out["ignore_mask"] = IGNORE_FILE
        return out

    def fingerprint(self) -> str:
        """Changes with every threshold, mask pixel or scale: a CSV is never resumed across policies."""
        digest = hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode())
        for mask in (self.roi, self.ignore):
            if mask is not None:
                digest.update(repr(mask.shape).encode())
                digest.update(np.packbits(mask).tobytes())
        return digest.hexdigest()

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], package_dir: str | Path | None = None, *,
                      masks: bool = True) -> "InspectionPolicy":
        """The policy of a package's metadata. Masks are read from ``package_dir`` (required
        when the metadata names any, unless ``masks`` is False: then they are left out). Packages written before policy version 2 (no ``version``
        key: image/pixel thresholds, min area and normalisation only) load with the same
        thresholds, so their verdicts do not change."""
        thresholds = dict(metadata.get("thresholds") or {})
        stats = metadata.get("score_stats") or {}
        version = int(thresholds.get("version", 1))
        if version > POLICY_VERSION:
            raise PolicyError(f"The thresholds in this model package are from a newer workbench (policy "
                              f"version {version}); update the workbench to use it.")
        arrays: dict[str, np.ndarray | None] = {"roi": None, "ignore": None}
        for key, name in (("roi", "roi_mask"), ("ignore", "ignore_mask")):
            if masks and thresholds.get(name):
                if package_dir is None:
                    raise PolicyError(f"The model's {key} mask '{thresholds[name]}' needs its package folder.")
                arrays[key] = read_mask_file(package_dir, thresholds[name])
        return cls(
            ng_threshold=_value(thresholds.get("image")),
            ok_threshold=_value(thresholds.get("ok")) if version >= 2 else None,
            pixel_threshold=_value(thresholds.get("pixel")),
            min_defect_area=int(thresholds.get("min_defect_area", 0) or 0),
            roi=arrays["roi"], ignore=arrays["ignore"],
            normalization=str(thresholds.get("normalization", "raw")),
            source=str((thresholds.get("image") or {}).get("source", "")),
            image_stats=stats.get("image"), pixel_stats=stats.get("pixel"),
        )


def _value(entry: Any) -> float | None:
    if isinstance(entry, Mapping):
        entry = entry.get("value")
    return None if entry is None else float(entry)


def _resize(amap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    amap = np.asarray(amap, np.float32)
    if amap.shape == tuple(shape):
        return amap
    return cv2.resize(amap, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR)


def defect_region(amap: np.ndarray, threshold: float, shape: tuple[int, int] | None = None, min_area: int = 0,
                  inspect: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """(bool defect mask at ``shape``, number of 8-connected regions): map >= threshold inside
    the inspected area, regions smaller than ``min_area`` pixels removed."""
    amap = _resize(amap, shape) if shape is not None else np.asarray(amap, np.float32)
    region = amap >= threshold
    if inspect is not None:
        region &= inspect
    if not region.any():
        return region, 0
    n, labels, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= max(int(min_area), 1)
    return keep[labels], int(keep.sum())


# ----------------------------------------------------------------------------- files
def read_mask_file(package_dir: str | Path, name: str) -> np.ndarray:
    """A mask PNG inside ``package_dir`` (white = True). Names that leave the folder are refused."""
    folder = Path(package_dir).resolve()
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise PolicyError(f"{folder / META_FILE} names the mask file '{name}', which is not a plain file "
                          "name inside the package folder; re-save the calibration.")
    path = (folder / name).resolve()
    if path.parent != folder:
        raise PolicyError(f"The mask '{name}' lies outside the package folder {folder}.")
    if not path.is_file():
        raise PolicyError(f"The mask file {path} named in {folder / META_FILE} is missing; copy it back "
                          "or save the calibration again.")
    data = np.fromfile(path, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise PolicyError(f"The mask file {path} is not a readable image; save the calibration again.")
    return image > 127


def load_mask_image(path: str | Path) -> np.ndarray:
    """A user's mask image (``--roi`` / ``--ignore``): white (> 127) = True, any format OpenCV reads."""
    path = Path(path)
    if not path.is_file():
        raise PolicyError(f"Mask image not found: {path}")
    data = np.fromfile(path, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise PolicyError(f"{path} is not a readable image. Give a black/white PNG (white = the region).")
    return image > 127


def _encode_mask(mask: np.ndarray) -> bytes:
    ok, png = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise OSError("Could not encode a mask as PNG")
    return png.tobytes()


def read_package_metadata(package_dir: str | Path) -> dict[str, Any]:
    path = Path(package_dir) / META_FILE
    if not path.is_file():
        raise PolicyError(f"{path} is missing: {package_dir} is not a model package.")
    meta = read_json_file(path, PolicyError, "Restore it from a backup or retrain.")
    if not isinstance(meta, dict) or not isinstance(meta.get("thresholds", {}), dict):
        raise PolicyError(f"{path} is not a model description (expected a JSON object with a 'thresholds' "
                          "object); restore it from a backup or retrain.")
    return meta


def load_policy(package_dir: str | Path) -> InspectionPolicy:
    """The active policy of the package (training package or exported ONNX folder)."""
    return InspectionPolicy.from_metadata(read_package_metadata(package_dir), package_dir)


def apply_policy(metadata: dict[str, Any], policy: InspectionPolicy) -> dict[str, Any]:
    """``metadata`` with its ``thresholds`` block replaced by ``policy`` (in place; returned)."""
    metadata["thresholds"] = policy.to_json()
    return metadata


NOT_SAVED = "Nothing was saved: the policy holds values that are not valid (e.g. not finite numbers)."


def check_calibration_record(package_dir: str | Path, record: Mapping[str, Any]) -> None:
    """ModelPackageError (naming the field) unless ``record`` is a calibration entry that loading accepts."""
    validate(CalibrationJson, dict(record), Path(package_dir) / META_FILE, ModelPackageError, NOT_SAVED)


def write_policy(package_dir: str | Path, policy: InspectionPolicy, *,
                 calibration: Mapping[str, Any] | None = None, activate: bool = True) -> dict[str, Any]:
    """Store ``policy`` (and optionally a named calibration record) into the package, atomically.

    Masks are written first as PNG files inside the folder, then ``model.json``; masks no
    longer used are removed last, so a crash leaves the previous policy loadable.
    """
    package_dir = Path(package_dir)
    meta = read_package_metadata(package_dir)
    if calibration is not None:
        meta.setdefault("calibrations", {})[calibration["name"]] = dict(calibration)
        if activate:
            meta["active_calibration"] = calibration["name"]
    if activate:
        apply_policy(meta, policy)
        meta = clear_recheck(meta)  # thresholds chosen on the current scores: no re-check pending
    error = ExportedPackageError if "onnx" in meta else ModelPackageError
    # never write what loading would refuse
    validate(ThresholdsJson, meta.get("thresholds") or {}, package_dir / META_FILE, error, NOT_SAVED)
    if calibration is not None:
        check_calibration_record(package_dir, calibration)
    if activate:
        for mask, name in ((policy.roi, ROI_FILE), (policy.ignore, IGNORE_FILE)):
            if mask is not None:
                atomic_write_bytes(package_dir / name, _encode_mask(mask))
    atomic_write_json(package_dir / META_FILE, meta)
    if activate:
        for mask, name in ((policy.roi, ROI_FILE), (policy.ignore, IGNORE_FILE)):
            if mask is None and (package_dir / name).is_file():
                (package_dir / name).unlink()
    return meta


def copy_policy_files(source_dir: str | Path, target_dir: str | Path, metadata: Mapping[str, Any]) -> None:
    """Copy the mask files that ``metadata``'s policy names from one package folder to another."""
    thresholds = metadata.get("thresholds") or {}
    for key in ("roi_mask", "ignore_mask"):
        if thresholds.get(key):
            mask = read_mask_file(source_dir, thresholds[key])
            atomic_write_bytes(Path(target_dir) / thresholds[key], _encode_mask(mask))


def provisional_policy(good_scores: np.ndarray, score_stats: Mapping[str, Any]) -> InspectionPolicy:
    """Before any calibration: NG above every held-out good image (a stopgap until labelled data)."""
    return InspectionPolicy(ng_threshold=float(np.max(good_scores)),
                            source="max score of held-out good images (provisional; calibrate on labelled data)",
                            image_stats=score_stats.get("image"), pixel_stats=score_stats.get("pixel"))


__all__ = ["Decision", "ERROR", "IGNORE_FILE", "InspectionPolicy", "MapScale", "NG", "NORMALIZATIONS", "OK",
           "PolicyError", "REVIEW", "ROI_FILE", "UNDECIDED", "apply_policy", "copy_policy_files", "defect_region",
           "denormalize", "load_mask_image", "load_policy", "normalize_scores", "provisional_policy",
           "read_mask_file", "read_package_metadata", "write_policy"]
