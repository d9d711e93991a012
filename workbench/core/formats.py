"""One declarative schema for every JSON file the workbench reads, and one error type per kind.

Files read: a training package's ``model.json`` (:class:`ModelJson`, errors
:class:`ModelPackageError`), an exported package's ``model.json`` (:class:`ExportJson`,
:class:`ExportedPackageError`), a predict run's ``predict_run.json`` (:class:`PredictRunJson`,
:class:`PredictRunError`), COCO label files (:class:`CocoFile`) and the manifest of an
MVTec-layout label export (:class:`LabelManifestJson`), both with the labels module's
``LabelError``. Every message names the file, the field (``'input.size.0'``) and what is
expected, so a damaged or hand-edited file never ends in a traceback.

Why pydantic (v2) rather than jsonschema: the schema is plain typed Python next to the code
that uses it (no second schema language to keep in step), strict mode refuses ``"1"`` and
``true`` where a number is meant, ``allow_inf_nan=False`` refuses NaN/Infinity (which Python's
``json`` module happily parses) in every numeric field, each error carries the location of the
bad field for the message, and cross-field rules (an RLE's size must match its image, a
polygon has x,y pairs) are ordinary validators. It is a small, widely used library with a
compiled core and no torch dependency, so the torch-free deployment path can use it too.

Unknown keys are kept (``extra="allow"``): packages carry training info and future fields
through loads, and old packages (which lack later optional fields) keep loading.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench.core.files import OutputKind

MAX_LABEL_PIXELS = 200_000_000  # same limit as images (data.io.MAX_IMAGE_PIXELS): no gigapixel masks


class ModelPackageError(ValueError):
    """A model folder is missing, damaged, or from an incompatible version."""


class ExportedPackageError(ModelPackageError):
    """An exported (ONNX) package is missing, damaged or points outside its folder."""


class PredictRunError(ValueError):
    """A predict output folder's ``predict_run.json`` or ``scores.csv`` cannot be used."""


# ----------------------------------------------------------------------------- field types
Finite = Annotated[float, Field(allow_inf_nan=False)]
PositiveFinite = Annotated[float, Field(allow_inf_nan=False, gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class _Schema(BaseModel):
    """Known fields are typed; fields this version does not know are kept (newer writers add
    some), but a number among them must still be finite: NaN/inf never reach the runtime."""

    model_config = ConfigDict(strict=True, extra="allow")

    @model_validator(mode="after")
    def _finite_extras(self):
        for name, value in (self.model_extra or {}).items():
            where = _non_finite(value)
            if where is not None:
                raise ValueError(f"'{name}{where}' must be a finite number")
        return self


def _non_finite(value: Any, path: str = "") -> str | None:
    """The path of the first NaN/inf inside ``value`` (nested lists and dicts), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found is not None:
            return found
    return None


# ----------------------------------------------------------------------------- model packages
class BackboneJson(_Schema):
    name: str
    weights: str
    weights_sha256: str | None = None


class InputJson(_Schema):
    size: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)] | None = None
    channels: PositiveInt = 3
    mean: Annotated[list[Finite], Field(min_length=3, max_length=3)] | None = None
    std: Annotated[list[PositiveFinite], Field(min_length=3, max_length=3)] | None = None


class ThresholdJson(_Schema):
    value: Finite | None = None
    source: str | None = None


def _file_in_package(name: str | None) -> str | None:
    """A file the package refers to must be a plain name inside the package folder."""
    if name is not None and (not name or Path(name).name != name or name in (".", "..")):
        raise ValueError(f"must be a file name inside the package folder, not {name!r}")
    return name


class ThresholdsJson(_Schema):
    """The inspection policy (see ``calibration.policy``): written by ``InspectionPolicy.to_json``."""

    version: PositiveInt | None = None
    image: ThresholdJson | None = None
    ok: ThresholdJson | None = None
    pixel: ThresholdJson | None = None
    min_defect_area: NonNegativeInt = 0
    normalization: str = "raw"
    roi_mask: str | None = None
    ignore_mask: str | None = None

    @field_validator("roi_mask", "ignore_mask")
    @classmethod
    def _mask_names(cls, name: str | None) -> str | None:
        return _file_in_package(name)


class ImageStatsJson(_Schema):
    n: NonNegativeInt | None = None
    mean: Finite | None = None
    std: Finite | None = None
    min: Finite | None = None
    p50: Finite | None = None
    max: Finite | None = None


class PixelStatsJson(_Schema):
    p01: Finite | None = None
    p50: Finite | None = None
    p99: Finite | None = None
    p999: Finite | None = None
    max: Finite | None = None


class ScoreStatsJson(_Schema):
    image: ImageStatsJson | None = None
    pixel: PixelStatsJson | None = None


class CalibrationJson(_Schema):
    name: str | None = None
    preset: str | None = None
    target: Finite | None = None
    image_threshold: Finite | None = None
    pixel_threshold: Finite | None = None
    min_defect_area: NonNegativeInt = 0
    normalization: str = "raw"


class _PackageJson(_Schema):
    format_version: PositiveInt
    workbench_version: str | None = None  # which version wrote it: text, never a number
    created_at: str | None = None
    method: str
    params: dict[str, Any] = Field(default_factory=dict)
    backbone: BackboneJson | None = None
    input: InputJson = Field(default_factory=InputJson)
    thresholds: ThresholdsJson | None = None
    score_stats: ScoreStatsJson | None = None
    calibrations: dict[str, CalibrationJson] | None = None
    active_calibration: str | None = None

    @field_validator("params")
    @classmethod
    def _finite_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        for name, value in params.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"parameter '{name}' must be a finite number, not {value}")
        return params


class ModelJson(_PackageJson):
    """``model.json`` of a training package (``workbench train --out``)."""

    backbone: BackboneJson
    weights_file: str = "weights.safetensors"
    weights_sha256: str | None = None


class OnnxJson(_Schema):
    file: Annotated[str, Field(min_length=1)]
    sha256: Annotated[str, Field(min_length=64, max_length=64)]
    opset: PositiveInt | None = None


class ExportParamsJson(_Schema):
    batch_size: PositiveInt = 8


class ExportJson(_PackageJson):
    """``model.json`` of an exported package (``workbench export``): what the runtime needs."""

    input: InputJson
    onnx: OnnxJson

    @model_validator(mode="after")
    def _runtime_fields(self) -> ExportJson:
        missing = [k for k in ("size", "mean", "std") if getattr(self.input, k) is None]
        if missing:
            raise ValueError(f"'input' must give {', '.join(missing)} (the preprocessing of the model)")
        if self.input.size[0] != self.input.size[1]:  # type: ignore[index]
            raise ValueError("'input.size' must be square (the exported graph takes square images)")
        ExportParamsJson.model_validate({k: v for k, v in self.params.items() if k == "batch_size"})
        return self


class PredictRunJson(_Schema):
    """``predict_run.json``: which model and threshold wrote a ``scores.csv``."""

    model_fingerprint: str
    threshold: Finite | None = None
    policy: str | None = None  # fingerprint of the inspection policy (thresholds, band, masks)
    overlays: bool = True


# ----------------------------------------------------------------------------- run records
class RunRecordError(ValueError):
    """A run record (``run_records/*.json`` or ``workbench train --record R.json``) cannot be used."""


class RecordFileJson(_Schema):
    path: str
    sha256: Annotated[str, Field(min_length=64, max_length=64)]
    bytes: NonNegativeInt


class RecordDatasetJson(_Schema):
    """Which images a run read: enough to re-load the dataset and to tell whether it changed."""

    name: str
    root: str
    layout: str = "auto"
    category: str | None = None
    split: str = "train"
    n_files: NonNegativeInt
    sha256: Annotated[str, Field(min_length=64, max_length=64)]  # of the sorted (relative path, file hash) list
    files: list[RecordFileJson] = Field(default_factory=list)


class RunRecordJson(_Schema):
    """One training, evaluation, calibration, export or update, as written by ``core.run_record``."""

    record_version: PositiveInt = 1
    kind: Annotated[str, Field(pattern="^(train|evaluate|calibrate|export|update)$")]
    created_at: str
    workbench_version: str
    method: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    dataset: RecordDatasetJson | None = None
    packages: dict[str, str | None] = Field(default_factory=dict)
    device: str = "cpu"
    platform: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, Finite] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)


# ----------------------------------------------------------------------------- COCO
class RleJson(_Schema):
    size: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]
    counts: list[NonNegativeInt] | str

    @model_validator(mode="after")
    def _plausible(self) -> RleJson:
        h, w = self.size
        if h * w > MAX_LABEL_PIXELS:
            raise ValueError(f"RLE size {h}x{w} is above the limit of {MAX_LABEL_PIXELS // 1_000_000} megapixels")
        if isinstance(self.counts, list) and sum(self.counts) != h * w:
            raise ValueError(f"RLE run lengths add up to {sum(self.counts)} pixels, not {h}x{w} = {h * w}")
        return self


Polygon = Annotated[list[Finite], Field(min_length=2)]


def _even_polygons(polys: list[list[float]]) -> list[list[float]]:
    for i, poly in enumerate(polys):
        if len(poly) % 2:
            raise ValueError(f"polygon {i} has {len(poly)} coordinates: it must be x,y pairs (an even count)")
    return polys


class CocoWorkbenchJson(_Schema):
    """Our own per-image extension: the reviewed verdict, class, note and mask."""

    reviewed: bool | None = None
    verdict: str | None = None
    defect_class: str | None = None
    note: str | None = None
    reviewed_mask: RleJson | list[Polygon] | None = None

    @field_validator("verdict")
    @classmethod
    def _verdict(cls, v: str | None) -> str | None:
        if v not in (None, "OK", "NG"):
            raise ValueError("verdict must be 'OK', 'NG' or null")
        return v

    @field_validator("reviewed_mask")
    @classmethod
    def _pairs(cls, seg: Any) -> Any:
        return _even_polygons(seg) if isinstance(seg, list) else seg


class CocoImageJson(_Schema):
    id: int | str
    file_name: str
    width: NonNegativeInt | None = None
    height: NonNegativeInt | None = None
    workbench: CocoWorkbenchJson | None = None

    @model_validator(mode="after")
    def _size(self) -> CocoImageJson:
        if self.width and self.height and self.width * self.height > MAX_LABEL_PIXELS:
            raise ValueError(f"image size {self.width}x{self.height} is above the limit of "
                             f"{MAX_LABEL_PIXELS // 1_000_000} megapixels")
        return self


class CocoAnnotationJson(_Schema):
    id: int | str | None = None
    image_id: int | str
    category_id: int | str | None = None
    segmentation: RleJson | list[Polygon] | None = None
    area: Annotated[float, Field(allow_inf_nan=False, ge=0)] | None = None

    @field_validator("segmentation")
    @classmethod
    def _pairs(cls, seg: Any) -> Any:
        return _even_polygons(seg) if isinstance(seg, list) else seg


class CocoCategoryJson(_Schema):
    id: int | str
    name: str


class CocoFile(_Schema):
    images: list[CocoImageJson]
    annotations: list[CocoAnnotationJson] = Field(default_factory=list)
    categories: list[CocoCategoryJson] = Field(default_factory=list)


class ManifestEntryJson(_Schema):
    key: str
    file: str | None = None
    mask: str | None = None
    reviewed_mask: str | None = None
    reviewed: bool | None = None
    verdict: str | None = None
    defect_class: str | None = None
    note: str | None = None

    @field_validator("verdict")
    @classmethod
    def _verdict(cls, v: str | None) -> str | None:
        if v not in (None, "OK", "NG"):
            raise ValueError("verdict must be 'OK', 'NG' or null")
        return v


class LabelManifestJson(_Schema):
    """``workbench_labels.json`` beside an MVTec-layout label export."""

    format: str
    version: PositiveInt | None = None
    images: list[ManifestEntryJson] = Field(default_factory=list)


# ----------------------------------------------------------------------------- validation
S = TypeVar("S", bound=BaseModel)


def describe_errors(exc: ValidationError, limit: int = 3) -> str:
    """Pydantic errors as "'field.path' <what is expected> (found <value>)", a few at most."""
    parts = []
    for err in exc.errors(include_url=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged-")))
        msg = err["msg"].removeprefix("Value error, ")
        found = repr(err.get("input"))
        found = found if len(found) <= 60 else found[:57] + "..."
        parts.append(f"'{loc or '(top level)'}': {msg} (found {found})")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more problem(s)" if more > 0 else "")


def validate(schema: type[S], data: Any, path: str | Path, error: type[Exception], what_to_do: str) -> S:
    """``data`` checked against ``schema``; ``error`` naming ``path``, the field and what is expected."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise error(f"{path}: {describe_errors(exc)}. {what_to_do}") from exc
    except RecursionError as exc:
        raise error(f"{path}: nested too deeply to be a {schema.__name__}. {what_to_do}") from exc


def read_json_file(path: str | Path, error: type[Exception], what_to_do: str) -> Any:
    """Parse a JSON file; ``error`` (naming the file) when it cannot be read or is not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise error(f"{path} is damaged ({exc}). {what_to_do}") from exc


# ----------------------------------------------------------------------------- output kinds
def _valid_json(path: Path, schema: type[BaseModel]) -> bool:
    try:
        schema.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, RecursionError):
        return False
    return True


def _is_training_package(folder: Path) -> bool:
    meta = folder / "model.json"
    return _valid_json(meta, ModelJson) and "onnx" not in json.loads(meta.read_text(encoding="utf-8"))


def _is_export(folder: Path) -> bool:
    return _valid_json(folder / "model.json", ExportJson) and (folder / "model.onnx").is_file()


def _is_predict_run(folder: Path) -> bool:
    """Predict never deletes its folder, only adds to it: its own files are enough to recognise
    it (a damaged ``predict_run.json`` is then reported by the resume as a PredictRunError)."""
    return (folder / "predict_run.json").is_file() or (folder / "scores.csv").is_file()


_POLICY_MASKS = frozenset({"roi_mask.png", "ignore_mask.png"})  # calibration.policy.ROI_FILE / IGNORE_FILE
# memory-bank sources (evidence), run records and earlier versions (incremental updates)
_PACKAGE_EXTRAS = frozenset({"aux_tensors.safetensors", "run_records", "versions"})
MODEL_PACKAGE = OutputKind("model package", frozenset({"model.json", "weights.safetensors"}) | _POLICY_MASKS
                           | _PACKAGE_EXTRAS,
                           _is_training_package,
                           extra_files=lambda name: name.startswith("predictions-") and name.endswith(".npz"))
EXPORTED_PACKAGE = OutputKind("exported model", frozenset({"model.json", "model.onnx", "run_records"}) | _POLICY_MASKS,
                              _is_export)


def _is_sweep_run(folder: Path) -> bool:
    """A sweep only adds to its folder (finished combinations are kept for the next run)."""
    return (folder / "sweep.json").is_file()


SWEEP_RUN = OutputKind("sweep", frozenset({"sweep.json", "leaderboard.csv", "leaderboard.json", "runs"}),
                       _is_sweep_run)
PREDICT_RUN = OutputKind("predict run", frozenset({"predict_run.json", "scores.csv", ".scores.csv.lock"}),
                         _is_predict_run, extra_files=lambda name: name.endswith("_overlay.png"))
