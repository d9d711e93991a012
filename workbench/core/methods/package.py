"""Model packages: a folder with ``model.json`` (everything needed to rebuild the model, in
plain JSON) and ``weights.safetensors`` (the learned tensors). Nothing is ever unpickled.

The JSON records the format version, method and parameters, backbone and its weights
source, input size and normalisation, score statistics, thresholds and a SHA-256 of the
weights file, so a loader can refuse a package it cannot reproduce exactly.
"""

from __future__ import annotations

import datetime as _dt
import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

import workbench
from workbench.core.files import atomic_replace_dir, atomic_write_json, file_sha256
from workbench.core.backbones import BackboneSpec
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.registry import get_method

FORMAT_VERSION = 1
META_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
# Keys written from the model itself; every other key comes from ``model.metadata``
# (training info, score statistics, thresholds, calibrations) and is carried through loads.
CORE_KEYS = ("format_version", "workbench_version", "created_at", "method", "params", "backbone",
             "input", "weights_file", "weights_sha256")


class ModelPackageError(ValueError):
    """A model folder is missing, damaged, or from an incompatible version."""


def save_model(model: AnomalyModel, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` atomically (replacing an existing package)."""
    if not model.fitted:
        raise ValueError("Cannot save an untrained model.")
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    weights_path = staging / WEIGHTS_FILE
    save_file(model.state_tensors(), str(weights_path))
    atomic_write_json(staging / META_FILE, build_metadata(model, file_sha256(weights_path)))
    atomic_replace_dir(staging, directory)
    return directory


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
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not directory.is_dir():
        raise ModelPackageError(f"Model folder not found: {directory}")
    if not meta_path.is_file():
        raise ModelPackageError(f"{directory} is not a model package: {META_FILE} is missing. "
                                "Pick the folder written by 'workbench train --out'.")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelPackageError(f"{meta_path} is damaged ({exc}). Retrain or restore the model.") from exc
    if not isinstance(meta, dict) or "format_version" not in meta or "method" not in meta:
        raise ModelPackageError(f"{meta_path} lacks 'format_version' or 'method'.")
    if int(meta["format_version"]) > FORMAT_VERSION:
        raise ModelPackageError(
            f"{directory} was written by a newer workbench (format {meta['format_version']}, this "
            f"version reads up to {FORMAT_VERSION}). Update the workbench to load it.")
    return meta


def load_model(directory: str | Path, device: str | torch.device | None = None) -> AnomalyModel:
    """Rebuild a trained model from its package, verifying the weights checksum."""
    directory = Path(directory)
    meta = read_metadata(directory)
    weights_path = directory / str(meta.get("weights_file", WEIGHTS_FILE))
    if not weights_path.is_file():
        raise ModelPackageError(f"{weights_path} is missing: the model package is incomplete.")
    if meta.get("weights_sha256") and file_sha256(weights_path) != meta["weights_sha256"]:
        raise ModelPackageError(f"{weights_path} does not match the checksum in {META_FILE}: the "
                                "file was altered or damaged. Retrain or restore the model.")
    try:
        cls = get_method(str(meta["method"]))
        model = cls(device=device, **meta["params"])
    except ValueError as exc:
        raise ModelPackageError(f"{directory}: {exc}") from exc
    model.backbone_spec = BackboneSpec.from_dict(meta["backbone"])
    try:
        tensors = load_file(str(weights_path))
    except Exception as exc:
        raise ModelPackageError(f"{weights_path} cannot be read as safetensors: {exc}") from exc
    model.load_state_tensors(tensors)
    model.metadata = {k: v for k, v in meta.items() if k not in CORE_KEYS}
    return model
