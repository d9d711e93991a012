"""onnxruntime inference for exported models, with the same preprocessing as training."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.files import file_sha256
from workbench.core.methods.images import to_array


class OnnxInferencer:
    """Scores images with an exported ``model.onnx``: CPU by default, CUDA when available.

    ``predict`` has the same signature and outputs as ``AnomalyModel.predict`` so the CLI and
    the GUI can use either.
    """

    def __init__(self, directory: str | Path, providers: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        directory = Path(directory)
        self.directory = directory  # the policy's ROI/ignore masks live beside model.json
        meta_path = directory / "model.json"
        if not meta_path.is_file():
            raise ValueError(f"{directory} is not an exported model: model.json is missing. "
                             "Create one with 'workbench export --model M --format onnx --out DIR'.")
        self.metadata: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        onnx_info = self.metadata.get("onnx")
        if not onnx_info:
            raise ValueError(f"{meta_path} describes no ONNX graph (is this a training package? "
                             "export it first with 'workbench export').")
        onnx_path = directory / onnx_info["file"]
        if not onnx_path.is_file() or file_sha256(onnx_path) != onnx_info["sha256"]:
            raise ValueError(f"{onnx_path} is missing or does not match its checksum in model.json.")
        available = ort.get_available_providers()
        wanted = list(providers) if providers else ["CUDAExecutionProvider", "CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options,
                                            providers=[p for p in wanted if p in available])
        self.image_size = int(self.metadata["input"]["size"][0])
        self.mean = self.metadata["input"]["mean"]
        self.std = self.metadata["input"]["std"]
        self.batch_size = int(self.metadata.get("params", {}).get("batch_size", 8))
        self.fitted = True

    @property
    def params(self) -> dict[str, Any]:
        return self.metadata.get("params", {})

    def predict(self, images: Sequence[np.ndarray], progress=None, cancel=None) -> tuple[np.ndarray, np.ndarray]:
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
