"""Deployment steps behind the Export step: the package at a chosen calibration (optionally
zipped) and a parity check of the exported graph against the torch model.

The exported ``model.json`` carries one inspection policy. :func:`export_package` exports the
training package and, when a saved calibration is named, stores that calibration's thresholds
(on the package's ROI / ignore masks) as the export's policy: a line PC then decides exactly as
the calibration did. :func:`parity_check` scores a few images with both runtimes and applies the
exported policy to each, so the user sees before shipping that onnxruntime gives the same
decisions (field notes: exported scores that differ from the library are a common complaint).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter

ZIP_MEMBERS = frozenset({"model.json", "model.onnx"})


@dataclass
class ExportOutcome:
    export_dir: Path
    calibration: str | None
    ng_threshold: float | None
    zip_path: Path | None = None


def export_package(model_dir: str | Path, out_dir: str | Path, *, calibration: str | None = None,
                   zip_path: str | Path | None = None, overwrite: bool = False,
                   progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> ExportOutcome:
    """Export ``model_dir`` to ``out_dir`` (ONNX + model.json) at ``calibration`` (default: the
    active policy); with ``zip_path`` also a zip of the exported folder, written atomically."""
    from workbench.core.calibration.calibrate import load_calibrations, policy_of
    from workbench.core.calibration.policy import load_policy, write_policy
    from workbench.core.export.onnx import export_onnx
    from workbench.core.files import check_output_dir
    from workbench.core.formats import EXPORTED_PACKAGE
    from workbench.core.methods.package import load_model

    cancel = cancel or CancelToken()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    inputs = [("the model folder", model_dir)]
    check_output_dir(out_dir, EXPORTED_PACKAGE, overwrite=overwrite, inputs=inputs)
    if zip_path is not None:
        check_zip_target(zip_path)
    policy = None
    if calibration is not None:
        saved = load_calibrations(model_dir)
        if calibration not in saved:
            raise ValueError(f"{model_dir / 'model.json'} has no calibration named '{calibration}' "
                             f"(saved: {', '.join(sorted(saved)) or 'none'}).")
        policy = policy_of(saved[calibration], load_policy(model_dir))
    step = make_reporter(progress, "Export", 3 if zip_path is not None else 2)
    step(0, "loading the model")
    model = load_model(model_dir, device="cpu")
    if not model.exportable:
        raise ValueError(f"{model.title} cannot be exported to ONNX: its inference is not a single forward pass.")
    cancel.raise_if_cancelled()
    step(1, "writing the ONNX graph")
    export_onnx(model, out_dir, overwrite=overwrite, inputs=inputs, package_dir=model_dir)
    if policy is not None:
        write_policy(out_dir, policy)  # the export decides as the chosen calibration did
    outcome = ExportOutcome(out_dir, calibration, load_policy(out_dir).ng_threshold)
    if zip_path is not None:
        cancel.raise_if_cancelled()
        step(2, "zipping")
        outcome.zip_path = write_zip(out_dir, zip_path)
    step(3 if zip_path is not None else 2)
    return outcome


def check_zip_target(zip_path: str | Path) -> Path:
    """A zip may replace only an earlier exported-package zip (it holds model.json + model.onnx)."""
    zip_path = Path(zip_path)
    if zip_path.suffix.lower() != ".zip":
        raise ValueError(f"Cannot write the zip to '{zip_path}': the file name must end in .zip.")
    if zip_path.is_dir():
        raise ValueError(f"Cannot write the zip to '{zip_path}': it is a folder. Give a file name.")
    if zip_path.exists():
        try:
            with zipfile.ZipFile(zip_path) as zf:
                names = {Path(n).name for n in zf.namelist()}
        except (zipfile.BadZipFile, OSError):
            names = set()
        if not ZIP_MEMBERS <= names:
            raise ValueError(f"Cannot write the zip to '{zip_path}': the file exists and is not an exported "
                             "model package, so it would be lost. Choose a new file name.")
    return zip_path


def write_zip(export_dir: Path, zip_path: str | Path) -> Path:
    """Zip ``export_dir``'s files under its folder name; built beside the target, then renamed."""
    import os

    zip_path = check_zip_target(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{zip_path.name}.", suffix=".tmp", dir=zip_path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(p for p in export_dir.rglob("*") if p.is_file()):
                zf.write(path, f"{export_dir.name}/{path.relative_to(export_dir).as_posix()}")
        os.replace(tmp, zip_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return zip_path


@dataclass
class ParityResult:
    """torch vs onnxruntime on the same images, each decided by the exported policy."""

    paths: list[Path]
    torch_scores: np.ndarray
    onnx_scores: np.ndarray
    torch_decisions: list[str]
    onnx_decisions: list[str]
    max_map_difference: float
    max_score_difference: float
    mismatches: list[str] = field(default_factory=list)

    @property
    def decisions_equal(self) -> bool:
        return self.torch_decisions == self.onnx_decisions

    def summary(self) -> str:
        verdict = ("same decisions" if self.decisions_equal
                   else f"{len(self.mismatches)} different decision(s): {', '.join(self.mismatches[:5])}")
        return (f"{len(self.paths)} image(s): {verdict}; max score difference {self.max_score_difference:.2e}, "
                f"max map difference {self.max_map_difference:.2e}")


def parity_check(model_dir: str | Path, export_dir: str | Path, images: Sequence[str | Path], *,
                 progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> ParityResult:
    """Score ``images`` with the torch model and the exported graph; decide both with the export's policy."""
    from workbench.core.calibration.policy import load_policy
    from workbench.core.data import read_image
    from workbench.core.export.runtime import OnnxInferencer
    from workbench.core.methods.package import load_model

    cancel = cancel or CancelToken()
    if not images:
        raise ValueError("The parity check needs at least one image.")
    step = make_reporter(progress, "Parity check", 3)
    step(0, "reading images")
    paths = [Path(p) for p in images]
    pictures = [read_image(p) for p in paths]
    step(1, "torch")
    model = load_model(model_dir, device="cpu")
    t_scores, t_maps = model.predict(pictures, cancel=cancel)
    cancel.raise_if_cancelled()
    step(2, "onnxruntime")
    o_scores, o_maps = OnnxInferencer(export_dir, providers=["CPUExecutionProvider"]).predict(pictures, cancel=cancel)
    policy = load_policy(export_dir)
    decide = lambda s, m, img: policy.decide(float(s), m, img.shape[:2]).verdict  # noqa: E731
    t_dec = [decide(s, m, img) for s, m, img in zip(t_scores, t_maps, pictures)]
    o_dec = [decide(s, m, img) for s, m, img in zip(o_scores, o_maps, pictures)]
    step(3)
    return ParityResult(paths, np.asarray(t_scores), np.asarray(o_scores), t_dec, o_dec,
                        float(np.max(np.abs(np.asarray(t_maps, np.float64) - np.asarray(o_maps, np.float64)))),
                        float(np.max(np.abs(np.asarray(t_scores, np.float64) - np.asarray(o_scores, np.float64)))),
                        [p.name for p, a, b in zip(paths, t_dec, o_dec) if a != b])


def parity_images(records: Sequence[Any], n: int = 6) -> list[Path]:
    """A few test images for the parity check: half good, half defective, spread over the split."""
    good = [r.path for r in records if not r.is_anomalous]
    bad = [r.path for r in records if r.is_anomalous]
    take = lambda xs, k: [xs[i] for i in np.linspace(0, len(xs) - 1, min(k, len(xs))).astype(int)] if xs else []  # noqa: E731
    chosen = take(good, n // 2) + take(bad, n - n // 2)
    return list(dict.fromkeys(chosen))


__all__ = ["ExportOutcome", "ParityResult", "check_zip_target", "export_package", "parity_check", "parity_images",
           "write_zip"]
