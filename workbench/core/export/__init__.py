"""Deployment: ONNX export of trained models and an onnxruntime inferencer that matches them.

Names are imported lazily: the export side needs torch, the runtime side must not (the
torch-free deployment path imports ``workbench.core.export.runtime`` through this package).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "ONNX_FILE": "workbench.core.export.onnx",
    "export_onnx": "workbench.core.export.onnx",
    "OnnxInferencer": "workbench.core.export.runtime",
    "is_exported_package": "workbench.core.export.runtime",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
