"""Deployment: ONNX export of trained models and an onnxruntime inferencer that matches them."""

from workbench.core.export.onnx import ONNX_FILE, export_onnx
from workbench.core.export.runtime import OnnxInferencer

__all__ = ["ONNX_FILE", "OnnxInferencer", "export_onnx"]
