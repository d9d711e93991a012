"""onnxruntime inference for exported models, with the same preprocessing as training.

Part of the torch-free deployment path (the Inspector bundle ships without torch): nothing
here may import torch or timm, directly or through another module.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.files import file_sha256
from workbench.core.data.preprocess import to_array
from workbench.core.formats import ExportedPackageError, ExportJson, read_json_file, validate
from workbench.core.tiling import TilingSpec, predict_tiled


def is_exported_package(directory: str | Path) -> bool:
    """True when ``directory`` holds an exported package (its model.json names an ONNX graph)."""
    meta_path = Path(directory) / "model.json"
    try:
        return bool(json.loads(meta_path.read_text(encoding="utf-8")).get("onnx"))
    except (OSError, ValueError, AttributeError):
        return False


class OnnxInferencer:
    """Scores images with an exported ``model.onnx``: CPU by default, CUDA when available.

    ``predict`` has the same signature and outputs as ``AnomalyModel.predict`` so the CLI and
    the GUI can use either.
    """

    def __init__(self, directory: str | Path, providers: Sequence[str] | None = None,
                 threads: int | None = None) -> None:
        """``threads``: onnxruntime's intra-op threads (default: all cores); a worker of a
        process pool or cluster passes 1 so that workers do not compete for cores."""
        import onnxruntime as ort

        directory = Path(directory)
        self.directory = directory  # the policy's ROI/ignore masks live beside model.json
        meta, onnx_path = read_export(directory)
        self.metadata: dict[str, Any] = meta
        available = ort.get_available_providers()
        wanted = list(providers) if providers else ["CUDAExecutionProvider", "CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(onnx_path), options,
                                                providers=[p for p in wanted if p in available])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for a bad graph
            raise ExportedPackageError(f"{onnx_path} cannot be loaded by onnxruntime ({exc}). {REDO}") from exc
        checked = ExportJson.model_validate(meta)
        self.image_size = int(checked.input.size[0])  # type: ignore[index]
        self.mean = checked.input.mean
        self.std = checked.input.std
        self.batch_size = int(self.params.get("batch_size", 8))
        try:
            self.tiling = TilingSpec.from_metadata(meta)  # same geometry and stitching as the torch path
        except ValueError as exc:
            raise ExportedPackageError(f"{directory / 'model.json'}: {exc} {REDO}") from exc
        self.fitted = True

    @property
    def params(self) -> dict[str, Any]:
        return self.metadata.get("params", {})

    @property
    def map_size(self) -> int:
        return self.image_size if self.tiling is None else self.tiling.map_size

    def _score_tiles(self, tiles: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        batch = to_array(tiles, self.image_size, self.mean, self.std)
        s, m = self.session.run(["score", "anomaly_map"], {"image": batch})
        return np.asarray(s, np.float32), np.asarray(m, np.float32)

    def predict(self, images: Sequence[np.ndarray], progress=None, cancel=None) -> tuple[np.ndarray, np.ndarray]:
        if self.tiling is not None:
            return predict_tiled(images, self._score_tiles, self.tiling, self.batch_size, progress, cancel)
        scores, maps = [], []
        for start in range(0, len(images), self.batch_size):
            if cancel is not None:
                cancel.raise_if_cancelled()
            chunk = [images[i] for i in range(start, min(start + self.batch_size, len(images)))]
            batch = to_array(chunk, self.image_size, self.mean, self.std)
            s, m = self.session.run(["score", "anomaly_map"], {"image": batch})
            scores.append(s)
            maps.append(m)
        return np.concatenate(scores).astype(np.float32), np.concatenate(maps).astype(np.float32)


REDO = "Export the model again with 'workbench export --model M --format onnx --out DIR'."


def read_export(directory: Path) -> tuple[dict[str, Any], Path]:
    """An exported package's checked ``model.json`` and the path of its ONNX graph.

    The graph must lie inside the package folder (symbolic links resolved) and match the
    checksum in ``model.json``; every field is checked by the :class:`ExportJson` schema.
    Raises :class:`ExportedPackageError` naming the file, the field and what to do.
    """
    meta_path = directory / "model.json"
    if not meta_path.is_file():
        raise ExportedPackageError(f"{directory} is not an exported model: model.json is missing. {REDO}")
    meta = read_json_file(meta_path, ExportedPackageError, REDO)
    if isinstance(meta, dict) and "onnx" not in meta:
        raise ExportedPackageError(f"{meta_path} describes no ONNX graph (is this a training package? "
                                   "export it first with 'workbench export').")
    checked = validate(ExportJson, meta, meta_path, ExportedPackageError, f"The file is damaged or was edited. {REDO}")
    root = directory.resolve()
    onnx_path = (directory / checked.onnx.file)
    if root not in onnx_path.resolve().parents:
        raise ExportedPackageError(f"{meta_path}: 'onnx.file' must name a file inside the package folder "
                                   f"{directory}, not {checked.onnx.file!r}. {REDO}")
    try:
        digest = file_sha256(onnx_path) if onnx_path.is_file() else None
    except OSError as exc:
        raise ExportedPackageError(f"{onnx_path} cannot be read ({exc.strerror or exc}).") from exc
    if digest != checked.onnx.sha256:
        raise ExportedPackageError(f"{onnx_path} is missing or does not match its checksum in model.json. {REDO}")
    return meta, onnx_path
