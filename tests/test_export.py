"""ONNX export: the exported graph gives the same scores and maps as the torch model."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.core.export import OnnxInferencer, export_onnx
from workbench.core.methods import create_method

TINY = {"patchcore": {"image_size": 64, "coreset_ratio": 0.2}, "padim": {"image_size": 64}}


@pytest.mark.parametrize("method", sorted(TINY))
def test_onnx_matches_torch(method, tiny_images, tmp_path):
    model = create_method(method, device="cpu", **TINY[method]).fit(tiny_images["train"])
    test = tiny_images["good"] + tiny_images["bad"]
    scores, maps = model.predict(test)
    export_onnx(model, tmp_path / "onnx")
    runtime = OnnxInferencer(tmp_path / "onnx")
    onnx_scores, onnx_maps = runtime.predict(test)
    assert onnx_maps.shape == maps.shape and onnx_scores.shape == scores.shape
    scale = float(np.abs(maps).max())
    assert np.abs(onnx_maps - maps).max() <= 1e-4 * scale
    assert np.abs(onnx_scores - scores).max() <= 1e-4 * scale
    assert runtime.metadata["method"] == method and runtime.metadata["input"]["size"] == [64, 64]


def test_altered_onnx_is_refused(tiny_images, tmp_path):
    model = create_method("padim", device="cpu", **TINY["padim"]).fit(tiny_images["train"])
    export_onnx(model, tmp_path / "onnx")
    path = tmp_path / "onnx" / "model.onnx"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ValueError, match="checksum"):
        OnnxInferencer(tmp_path / "onnx")
