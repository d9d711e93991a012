"""Model packages: a folder with ``model.json`` (everything needed to rebuild the model, in
plain JSON) and ``weights.safetensors`` (the learned tensors). Nothing is ever unpickled.

The JSON records the format version, method and parameters, backbone and its weights
source, input size and normalisation, score statistics, thresholds and a SHA-256 of the
weights file, so a loader can refuse a package it cannot reproduce exactly.

Everything that can go wrong while loading (missing or damaged files, a newer format, tensors
that do not fit the method, e.g. from another input size) raises :class:`ModelPackageError`
with a message for the user; a loaded model has scored one blank image, so it is known to
work. Saving is crash-safe (see :mod:`workbench.core.files`): a save that fails (disk full)
or is killed leaves the previous package loadable.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

import workbench
from workbench.core.files import (atomic_replace_dir, atomic_write_json, check_output_dir, file_sha256, recover_dir,
                                  staged_dir)
from workbench.core.formats import MODEL_PACKAGE, ModelJson, ModelPackageError, read_json_file, validate
from workbench.core.backbones import BackboneError, BackboneSpec
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.registry import get_method

FORMAT_VERSION = 1
META_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
AUX_FILE = "aux_tensors.safetensors"
# Keys written from the model itself; every other key comes from ``model.metadata``
# (training info, score statistics, thresholds, calibrations) and is carried through loads.
CORE_KEYS = ("format_version", "workbench_version", "created_at", "method", "params", "backbone",
             "input", "weights_file", "weights_sha256")


NOT_SAVED = ("Nothing was saved: the trained model produced values that are not usable (e.g. not finite "
             "numbers); retrain it with other parameters or images.")
__all__ = ["ModelPackageError", "build_metadata", "load_model", "read_metadata", "save_model"]


def save_model(model: AnomalyModel, directory: str | Path, *, overwrite: bool = False,
               inputs: Sequence[tuple[str, str | Path]] = ()) -> Path:
    """Write ``model`` to ``directory`` atomically.

    ``directory`` must be new or empty, or hold a previous model package and ``overwrite`` be
    set; it may not be (or be inside, or contain) one of ``inputs`` (e.g. the dataset it was
    trained on). Anything else raises OutputFolderError and nothing is touched.
    """
    if not model.fitted:
        raise ValueError("Cannot save an untrained model.")
    directory = Path(directory)
    recover_dir(directory)  # a previous save killed half-way: restore, then tidy up its leftovers
    check_output_dir(directory, MODEL_PACKAGE, overwrite=overwrite, inputs=inputs)
    with staged_dir(directory) as staging:  # removed on every exit path (e.g. disk full)
        weights_path = staging / WEIGHTS_FILE
        save_file(model.state_tensors(), str(weights_path))
        _save_aux_tensors(model, staging)
        meta = build_metadata(model, file_sha256(weights_path))
        validate(ModelJson, meta, directory / META_FILE, ModelPackageError, NOT_SAVED)  # never write what load refuses
        atomic_write_json(staging / META_FILE, meta)
        atomic_replace_dir(staging, directory, MODEL_PACKAGE, overwrite=overwrite)
    return directory


def _save_aux_tensors(model: AnomalyModel, staging: Path) -> None:
    """Tensors beside inference (memory-bank sources for evidence) go to their own file, with
    its checksum in ``model.json`` under ``aux_tensors``."""
    aux = getattr(model, "aux_tensors", {}) or {}
    model.metadata.pop("aux_tensors", None)
    if aux:
        path = staging / AUX_FILE
        save_file({k: v.detach().cpu().contiguous() for k, v in aux.items()}, str(path))
        model.metadata["aux_tensors"] = {"file": AUX_FILE, "sha256": file_sha256(path)}


def _load_aux_tensors(directory: Path, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The package's auxiliary tensors ({} for packages written before they existed)."""
    aux = meta.get("aux_tensors")
    if not isinstance(aux, dict):
        return {}
    path = directory / AUX_FILE
    if not path.is_file():
        raise ModelPackageError(f"{path} is missing: the model package is incomplete (the model itself "
                                "still scores; restore the file, or retrain for evidence and updates).")
    if aux.get("sha256") and file_sha256(path) != aux["sha256"]:
        raise ModelPackageError(f"{path} does not match the checksum in {META_FILE}: the file was altered "
                                "or damaged. Restore it or retrain the model.")
    try:
        return load_file(str(path))
    except Exception as exc:
        raise ModelPackageError(f"{path} cannot be read as safetensors: {exc}") from exc


def build_metadata(model: AnomalyModel, weights_sha256: str) -> dict[str, Any]:
    core = {
        "format_version": FORMAT_VERSION,
        "workbench_version": workbench.__version__,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "method": model.name,
        "params": model.params,
        "backbone": model.backbone_spec.to_dict(),
        "input": {"size": [model.image_size, model.image_size], "channels": 3, "color": "RGB",
                  "resize": "area when shrinking, bilinear when enlarging",
                  "mean": list(model.normalization[0]), "std": list(model.normalization[1])},
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": weights_sha256,
    }
    assert tuple(core) == CORE_KEYS
    return {**core, **{k: v for k, v in model.metadata.items() if k not in CORE_KEYS}}


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """The package's ``model.json``, checked for structure; ModelPackageError otherwise."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not directory.is_dir():
        recover_dir(directory)
    if not directory.is_dir():
        raise ModelPackageError(f"Model folder not found: {directory}")
    if not meta_path.is_file():
        raise ModelPackageError(f"{directory} is not a model package: {META_FILE} is missing. "
                                "Pick the folder written by 'workbench train --out'.")
    meta = read_json_file(meta_path, ModelPackageError, "Retrain or restore the model.")
    if not isinstance(meta, dict) or "format_version" not in meta or "method" not in meta:
        raise ModelPackageError(f"{meta_path} lacks 'format_version' or 'method': it is damaged or "
                                "not a workbench model. Retrain or restore the model.")
    version = meta["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelPackageError(f"{meta_path}: 'format_version' must be a positive whole number, "
                                f"not {version!r}. The file is damaged; retrain or restore the model.")
    if version > FORMAT_VERSION:
        raise ModelPackageError(
            f"{directory} was written by a newer workbench (format {version}, this "
            f"version reads up to {FORMAT_VERSION}). Update the workbench to load it.")
    return meta


def _check_structure(directory: Path, meta: dict[str, Any]) -> Path:
    """Types and ranges of every key (the :class:`ModelJson` schema); returns the weights file path.

    The hand-written checks first give the long-standing messages for the commonest damage;
    the schema then checks every other field (finite numbers, sizes above 0, thresholds,
    calibrations)."""
    def bad(what: str) -> ModelPackageError:
        return ModelPackageError(f"{directory / META_FILE}: {what}. The file is damaged or was edited by "
                                 "hand; retrain or restore the model.")

    if not isinstance(meta["method"], str):
        raise bad("'method' must be a method name")
    if not isinstance(meta.get("params"), dict):
        raise bad("'params' must be an object of hyperparameters")
    backbone = meta.get("backbone")
    if not (isinstance(backbone, dict) and isinstance(backbone.get("name"), str)
            and isinstance(backbone.get("weights"), str)
            and isinstance(backbone.get("weights_sha256"), (str, type(None)))):
        raise bad("'backbone' must hold the backbone 'name' and 'weights'")
    name = meta.get("weights_file", WEIGHTS_FILE)
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise bad(f"'weights_file' must be a file name inside the model folder, not {name!r}")
    sha = meta.get("weights_sha256")
    if sha is not None and not isinstance(sha, str):
        raise bad("'weights_sha256' must be a hex string")
    inp = meta.get("input", {})
    if not isinstance(inp, dict):
        raise bad("'input' must be an object")
    channels = inp.get("channels", 3)
    if channels != 3:
        raise ModelPackageError(f"{directory} expects {channels!r}-channel input images, but this workbench "
                                "feeds RGB (3 channels): the model comes from another tool or was edited. "
                                "Retrain it here.")
    validate(ModelJson, meta, directory / META_FILE, ModelPackageError,
             "The file is damaged or was edited by hand; retrain or restore the model.")
    return directory / name


def _check_input_size(directory: Path, meta: dict[str, Any], model: AnomalyModel) -> None:
    size = meta.get("input", {}).get("size")
    if size is not None and size != [model.image_size, model.image_size]:
        raise ModelPackageError(f"{directory}: {META_FILE} says the input size is {size!r} but the parameters "
                                f"say image_size={model.image_size}. The file was edited or damaged; "
                                "retrain or restore the model.")


def _smoke_test(directory: Path, model: AnomalyModel) -> None:
    """Score one grey image: tensors that do not fit the method fail here, not in the user's run."""
    import numpy as np

    size = model.image_size
    try:
        scores, maps = model.predict([np.full((size, size, 3), 128, np.uint8)])
    except BackboneError as exc:
        raise ModelPackageError(f"{directory}: the backbone cannot be built: {exc}") from exc
    except (RuntimeError, ValueError, IndexError, KeyError, TypeError, AssertionError) as exc:
        raise ModelPackageError(
            f"{directory}: the weights do not fit the '{model.name}' model described in {META_FILE} "
            f"(trained on another input size, channel count or version?): {exc}. Retrain the model.") from exc
    if scores.shape != (1,) or maps.shape != (1, model.map_size, model.map_size):
        raise ModelPackageError(f"{directory}: the model produced outputs of the wrong shape; retrain it.")


def load_model(directory: str | Path, device: str | torch.device | None = None,
               verify: bool = True) -> AnomalyModel:
    """Rebuild a trained model from its package, verifying the weights checksum.

    Weights are read with safetensors only: nothing is ever unpickled. With ``verify`` (the
    default) the model scores one blank image before it is returned, so weights that do not
    fit the method raise ModelPackageError here instead of a torch error later.
    """
    directory = Path(directory)
    meta = read_metadata(directory)
    weights_path = _check_structure(directory, meta)
    if not weights_path.is_file():
        raise ModelPackageError(f"{weights_path} is missing: the model package is incomplete. "
                                "Restore the file or retrain the model.")
    try:
        digest = file_sha256(weights_path)
    except OSError as exc:
        raise ModelPackageError(f"{weights_path} cannot be read ({exc.strerror or exc}).") from exc
    if meta.get("weights_sha256") and digest != meta["weights_sha256"]:
        raise ModelPackageError(f"{weights_path} does not match the checksum in {META_FILE}: the "
                                "file was altered or damaged. Retrain or restore the model.")
    try:
        cls = get_method(meta["method"])
        model = cls(device=device, **cls.params_from_package(meta["params"]))
    except (ValueError, TypeError) as exc:
        raise ModelPackageError(f"{directory}: {exc}") from exc
    _check_input_size(directory, meta, model)
    model.backbone_spec = BackboneSpec.from_dict(meta["backbone"])
    try:
        tensors = load_file(str(weights_path))
    except Exception as exc:
        raise ModelPackageError(f"{weights_path} cannot be read as safetensors: {exc}") from exc
    try:
        model.load_state_tensors(tensors)
    except BackboneError as exc:
        raise ModelPackageError(f"{directory}: the backbone cannot be built: {exc}") from exc
    except (RuntimeError, ValueError, IndexError, KeyError, TypeError, AssertionError) as exc:
        raise ModelPackageError(f"{weights_path} does not hold the tensors of a '{model.name}' model "
                                f"({type(exc).__name__}: {exc}). Retrain or restore the model.") from exc
    model.metadata = {k: v for k, v in meta.items() if k not in CORE_KEYS}
    try:
        model.tiling  # noqa: B018 - a damaged 'tiling' entry is reported here, not at the first image
    except ValueError as exc:
        raise ModelPackageError(f"{directory / META_FILE}: {exc} The file is damaged or was edited by hand; "
                                "retrain or restore the model.") from exc
    model.aux_tensors = _load_aux_tensors(directory, meta)
    if verify:
        _smoke_test(directory, model)
    return model
