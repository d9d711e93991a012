"""ONNX export: the exported graph gives the same scores and maps as the torch model."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.core.export import OnnxInferencer, export_onnx
from workbench.core.methods import create_method
from workbench.core.methods.registry import METHODS

# A tiny training budget per method: parity needs a fitted model, not a good one.
TINY = {
    "patchcore": {"image_size": 64, "coreset_ratio": 0.2},
    "padim": {"image_size": 64},
    "dfm": {"image_size": 64},
    "spade": {"image_size": 64, "k": 3, "gallery_size": 2},
    "cutpaste": {"image_size": 64, "epochs": 1, "batch_size": 4},
    "stfpm": {"image_size": 64, "epochs": 1, "batch_size": 4},
    "reverse_distillation": {"image_size": 64, "epochs": 1, "batch_size": 4, "embed_dim": 64, "decoder_width": 64},
    "efficientad": {"image_size": 64, "width": 8, "distill_epochs": 1, "epochs": 1, "batch_size": 4},
    "fastflow": {"image_size": 64, "epochs": 1, "flow_steps": 2},
    "cflow": {"image_size": 64, "epochs": 1, "coupling_blocks": 2, "fibers_per_stage": 256},
    "autoencoder": {"image_size": 64, "epochs": 1, "width": 8},
    "ganomaly": {"image_size": 64, "epochs": 1, "width": 8, "latent_dim": 32},
    "draem": {"image_size": 64, "epochs": 1, "reconstruction_width": 8, "discriminative_width": 8},
}


def test_every_exportable_method_has_a_parity_test():
    exportable = {name for name, cls in METHODS.items() if cls(device="cpu").exportable}
    assert exportable == set(TINY), "add new exportable methods to TINY so their ONNX parity is tested"


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
