"""Export a trained model to one ONNX graph: normalised image tensor -> (image score, anomaly map).

The folder written holds ``model.onnx`` plus ``model.json`` (the package metadata: input
size, resize rule, mean/std, thresholds, score statistics) so the line-side runtime applies
exactly the preprocessing used in training (field notes: exported models disagree with the
library when preprocessing is baked in differently). The batch dimension is dynamic.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from workbench.core.calibration.policy import InspectionPolicy, copy_policy_files
from workbench.core.files import atomic_replace_dir, atomic_write_json, check_output_dir, file_sha256, staged_dir
from workbench.core.formats import EXPORTED_PACKAGE, ExportedPackageError, ExportJson, validate
from workbench.core.methods import AnomalyModel
from workbench.core.methods.package import NOT_SAVED, build_metadata

ONNX_FILE = "model.onnx"
OPSET = 17


def export_onnx(model: AnomalyModel, out_dir: str | Path, opset: int = OPSET, *, overwrite: bool = False,
                inputs: Sequence[tuple[str, str | Path]] = (), package_dir: str | Path | None = None) -> Path:
    """Write ``out_dir/model.onnx`` and ``out_dir/model.json`` atomically; returns ``out_dir``.

    ``out_dir`` must be new or empty, or an earlier export with ``overwrite`` set, and not one
    of ``inputs`` (the model folder exported from); OutputFolderError otherwise. The staging
    folder (``.NAME.tmp-PID-XXXX``) is removed on every exit path, and by the next export when
    a process was killed.

    The inspection policy travels in ``model.json``; its ROI/ignore mask files are copied from
    the training package ``package_dir`` (needed when the policy has masks).
    """
    if not model.fitted:
        raise ValueError("Cannot export an untrained model.")
    out_dir = Path(out_dir)
    check_output_dir(out_dir, EXPORTED_PACKAGE, overwrite=overwrite, inputs=inputs)
    module = model.export_module().eval()
    with staged_dir(out_dir) as staging:
        _write_export(model, module, staging, opset, out_dir, package_dir)
        atomic_replace_dir(staging, out_dir, EXPORTED_PACKAGE, overwrite=overwrite)
    return out_dir


def _write_export(model: AnomalyModel, module: torch.nn.Module, staging: Path, opset: int, target: Path,
                  package_dir: str | Path | None) -> None:
    dummy = torch.zeros(2, 3, model.image_size, model.image_size, device=model.device)
    onnx_path = staging / ONNX_FILE
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about constants; parity is tested instead
        torch.onnx.export(
            module, (dummy,), str(onnx_path), input_names=["image"], output_names=["score", "anomaly_map"],
            dynamic_axes={"image": {0: "batch"}, "score": {0: "batch"}, "anomaly_map": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
    meta = build_metadata(model, weights_sha256="")
    meta.pop("weights_file"), meta.pop("weights_sha256")
    meta["onnx"] = {"file": ONNX_FILE, "sha256": file_sha256(onnx_path), "opset": opset,
                    "input": "image: float32 [batch, 3, H, W], RGB, resized then (x/255 - mean) / std",
                    "outputs": ["score: float32 [batch]", "anomaly_map: float32 [batch, H, W]"]}
    validate(ExportJson, meta, target / "model.json", ExportedPackageError, NOT_SAVED)  # never write what load refuses
    if package_dir is not None:
        copy_policy_files(package_dir, staging, meta)
    InspectionPolicy.from_metadata(meta, staging)  # the exported policy loads (masks included)
    atomic_write_json(staging / "model.json", meta)
