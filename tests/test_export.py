"""ONNX export: every exportable method's parity with torch is checked in
``test_method_contract.py``; here, what the export guarantees beyond parity."""

from __future__ import annotations

import pytest

from workbench.core.export import OnnxInferencer, export_onnx
from workbench.core.methods.registry import METHODS


def test_every_exportable_method_has_a_parity_test():
    """The contract suite's ONNX parity test runs for every method declared exportable, with the
    budget the method declares; today that is every method."""
    exportable = {name for name, cls in METHODS.items() if cls(device="cpu").exportable}
    assert exportable == set(METHODS)
    assert all(METHODS[name].tiny_params for name in exportable)


def test_altered_onnx_is_refused(fitted_method, tmp_path):
    model, _ = fitted_method("padim")
    export_onnx(model, tmp_path / "onnx")
    path = tmp_path / "onnx" / "model.onnx"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ValueError, match="checksum"):
        OnnxInferencer(tmp_path / "onnx")
