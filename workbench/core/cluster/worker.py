"""What runs inside a worker process (a local pool process or a Ray worker).

The model package is loaded once per process and kept for every later batch of the same
package (keyed by folder and ``model.json`` fingerprint): loading costs far more than a batch.
Images are read by the worker itself from a path every worker can see (shared storage), so
only paths travel to the worker and only CSV rows travel back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.core.batch_predict import model_fingerprint, score_paths
from workbench.core.calibration.policy import InspectionPolicy

_SCORERS: dict[tuple[str, str], Any] = {}
_LOADS = 0  # how many times this process loaded a package (a test checks: once per package)


@dataclass(frozen=True)
class ScorerSpec:
    """Which package a worker loads and how: ``threads`` CPU threads for torch/onnxruntime."""

    model_dir: str
    fingerprint: str
    device: str | None = None
    threads: int = 1


@dataclass(frozen=True)
class BatchResult:
    """A scored batch: its CSV rows, and which process scored it (for the summary and tests)."""

    index: int
    rows: list[dict[str, Any]]
    pid: int
    loads: int


def scorer_for(spec: ScorerSpec) -> Any:
    """The loaded package of ``spec``, from this process's cache when it was loaded before."""
    global _LOADS
    key = (spec.model_dir, spec.fingerprint)
    scorer = _SCORERS.get(key)
    if scorer is None:
        _limit_threads(spec.threads)
        from workbench.core.export.runtime import OnnxInferencer, is_exported_package

        if is_exported_package(spec.model_dir):
            scorer = OnnxInferencer(spec.model_dir, threads=spec.threads)
        else:
            from workbench.core.methods.package import load_model

            scorer = load_model(spec.model_dir, device=spec.device)
        _SCORERS.clear()  # one package per worker at a time: memory stays flat across runs
        _SCORERS[key] = scorer
        _LOADS += 1
    return scorer


def score_batch(spec: ScorerSpec, index: int, items: list[tuple[str, str]], policy: InspectionPolicy,
                overlay_dir: str | None) -> BatchResult:
    """Score one batch of (path, stem); overlays are written by the worker (same names as in one
    process, so a retried batch simply rewrites them)."""
    scorer = scorer_for(spec)
    rows = score_paths(scorer, [(Path(p), stem) for p, stem in items], policy,
                       Path(overlay_dir) if overlay_dir else None)
    return BatchResult(index, rows, os.getpid(), _LOADS)


def spec_for(model_dir: str | Path, device: str | None, threads: int) -> ScorerSpec:
    return ScorerSpec(str(Path(model_dir).resolve()), model_fingerprint(model_dir), device, max(1, int(threads)))


def _limit_threads(threads: int) -> None:
    """One worker per core: each uses ``threads`` threads, so workers do not fight for cores."""
    import cv2

    cv2.setNumThreads(threads)
    try:  # only when torch is installed (the torch-free deployment has none)
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)
