"""The report's run record: what produced these numbers, so a reader can reproduce them.

Package versions are read from the installed distributions' metadata (``importlib.metadata``),
never by importing the packages: the torch-free Inspector reports "not installed" for torch
instead of loading it. The dataset file-list hash covers every image and mask path (relative to
the dataset root), its split and label, and each file's size: a changed, added or removed
file changes it, a moved dataset folder does not.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from workbench.core.data import ImageRecord

PACKAGES = ("workbench", "numpy", "scipy", "scikit-learn", "opencv-python-headless", "onnxruntime", "onnx", "torch",
            "torchvision", "timm", "faiss-cpu", "PySide6-Essentials", "jinja2", "matplotlib")


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _relative(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def _size(path: Path) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return -1


def file_list_hash(records: Iterable[ImageRecord], root: str | Path | None) -> str:
    """SHA-256 over (relative path, split, label, size, mask path, mask size) of every record, sorted."""
    base = Path(root) if root is not None else None
    lines = []
    for r in records:
        mask = _relative(r.mask_path, base) if r.mask_path is not None else ""
        mask_size = _size(r.mask_path) if r.mask_path is not None else 0
        lines.append(f"{_relative(r.path, base)}\t{r.split}\t{r.label}\t{_size(r.path)}\t{mask}\t{mask_size}")
    return hashlib.sha256("\n".join(sorted(lines)).encode("utf-8")).hexdigest()


def run_record(*, seed: Any, device: str, dataset_hash: str, timings: dict[str, float],
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": package_versions(),
        "seed": seed,
        "device": device,
        "dataset_hash": dataset_hash,
        "timings": {k: round(float(v), 3) for k, v in timings.items()},
        **(extra or {}),
    }


__all__ = ["file_list_hash", "package_versions", "run_record"]
