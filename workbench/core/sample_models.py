"""Pre-trained, calibrated models of the sample categories: the instant demo.

Why: a first run (or a customer demo on a laptop) should show heat maps and OK/NG decisions
within a minute, without training. One small PatchCore per sample category (a 2% coreset:
about 0.5 MB of memory bank plus a 4 MB ONNX graph, image AUROC 1.0 on the sample data) ships
in ``workbench/sample_models/CATEGORY/`` as a training package (``package/``: safetensors +
JSON, calibrated at max F1 on the sample test split, the cut midway between the classes) and its ONNX export (``onnx/``), with the
expected score and decision of every sample test image in ``manifest.json``.

:func:`build_sample_models` writes them (``installer/make_sample_models.py`` runs it; fixed
seed, CPU). :func:`check_sample_models` re-scores the sample test images with the shipped
ONNX graphs and compares with the manifest: the bundles' ``--selftest`` and the tests use it.
It is torch-free; the training side imports torch only inside the functions that need it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.files import OutputKind, atomic_replace_dir, atomic_write_json, check_output_dir, staged_dir
from workbench.package_data import sample_data_dir, sample_models_dir

METHOD = "patchcore"
PARAMS: dict[str, Any] = {"coreset_ratio": 0.02, "seed": 0}
MANIFEST = "manifest.json"
PACKAGE = "package"
EXPORT = "onnx"
CALIBRATION_NAME = "sample (max F1, mid-gap)"
SCORE_RTOL = 1e-4  # ONNX on another CPU or onnxruntime build: float32 summation order only
SCORE_ATOL = 1e-4


@dataclass(frozen=True)
class SampleModel:
    category: str
    package_dir: Path   # training package (torch): model.json + weights.safetensors
    export_dir: Path    # ONNX export (onnxruntime): model.json + model.onnx
    metrics: dict[str, Any]
    threshold: float
    expected: dict[str, tuple[float, str]]  # test image (relative to the category) -> (score, decision)


def read_manifest(root: Path | None = None) -> dict[str, Any]:
    root = Path(root or sample_models_dir())
    path = root / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"No shipped sample models: {path} is missing. Rebuild them with "
                                "'python installer/make_sample_models.py'.") from None


def shipped_models(root: Path | None = None) -> dict[str, SampleModel]:
    """The shipped sample models by category (empty when none are shipped)."""
    root = Path(root or sample_models_dir())
    if not (root / MANIFEST).is_file():
        return {}
    manifest = read_manifest(root)
    return {cat: SampleModel(cat, root / cat / PACKAGE, root / cat / EXPORT, entry["metrics"],
                             float(entry["threshold"]),
                             {k: (float(s), d) for k, (s, d) in entry["expected"].items()})
            for cat, entry in manifest["categories"].items()}


def decide(scores: np.ndarray, threshold: float) -> list[str]:
    """The image decision of the shipped calibration (score at or above the threshold is NG), by the
    inspection policy that every other path decides with (so a non-finite score is 'error', never OK)."""
    from workbench.core.calibration.policy import InspectionPolicy

    return list(InspectionPolicy(ng_threshold=threshold).verdicts(scores))


# --------------------------------------------------------------------------- build (torch)
def train_sample_model(category: str, data_root: Path | None = None, device: str = "cpu"):
    """Train (fixed seed) and evaluate the sample model of ``category``: (TrainResult, EvalResult)."""
    from workbench.core.data import load_dataset
    from workbench.core.evaluation import evaluate_model
    from workbench.core.training import train_model

    dataset = load_dataset(Path(data_root or sample_data_dir()), category=category)
    result = train_model(dataset, METHOD, dict(PARAMS), device=device)
    return dataset, result, evaluate_model(result.model, dataset)


def _is_sample_model_set(folder: Path) -> bool:
    """A folder written by :func:`build_sample_models`: its manifest and one folder per category it names."""
    try:
        categories = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["categories"]
        return all(p.name == MANIFEST or (p.is_dir() and p.name in categories) for p in folder.iterdir())
    except (OSError, ValueError, KeyError, TypeError):
        return False


# the whole set is rebuilt on purpose, but only over an earlier set: never over another folder
SAMPLE_MODEL_SET = OutputKind("sample model set", frozenset({MANIFEST}), _is_sample_model_set,
                              extra_files=lambda name: True)


def build_sample_models(out: Path, data_root: Path | None = None,
                        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, calibrate and export one model per sample category into ``out``: a new or empty folder,
    or an earlier sample model set, which is replaced atomically (any other folder is refused)."""
    from workbench.core.calibration import calibrate, save_calibration
    from workbench.core.data import list_categories
    from workbench.core.export import export_onnx
    from workbench.core.export.runtime import OnnxInferencer
    from workbench.core.methods.package import META_FILE, load_model, read_metadata, save_model
    from workbench.core.methods.images import LazyImages

    data_root = Path(data_root or sample_data_dir())
    out = Path(out)
    check_output_dir(out, SAMPLE_MODEL_SET, overwrite=True, inputs=[("the sample data", data_root)])
    manifest: dict[str, Any] = {"method": METHOD, "params": PARAMS, "calibration": CALIBRATION_NAME,
                                "categories": {}}
    with staged_dir(out) as staging:
        for category in list_categories(data_root):
            dataset, result, evaluation = train_sample_model(category, data_root)
            package = staging / category / PACKAGE
            save_model(result.model, package)
            preset, target = robust_max_f1(evaluation)
            cal = calibrate(evaluation, preset, target, name=CALIBRATION_NAME,
                            image_stats=result.model.metadata["score_stats"]["image"],
                            data={"dataset": f"sample_data/{category}", "split": "test"})
            cal.created_by = "installer/make_sample_models.py"
            save_calibration(package, cal)
            _strip_machine_paths(package / META_FILE, category)
            export = staging / category / EXPORT
            export_onnx(load_model(package, device="cpu"), export)
            _strip_machine_paths(export / META_FILE, category)
            # expected values come from the shipped ONNX graph, the thing the bundles run
            paths = [r.path for r in dataset.test]
            scores, _ = OnnxInferencer(export, providers=["CPUExecutionProvider"]).predict(LazyImages(paths))
            threshold = float(read_metadata(package)["thresholds"]["image"]["value"])
            keys = [Path(p).relative_to(dataset.root).as_posix() for p in paths]
            metrics = {k: v for k, v in evaluation.metrics().items()
                       if k in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "n_good", "n_defect")}
            manifest["categories"][category] = {
                "threshold": threshold, "metrics": metrics, "fit_seconds": round(result.fit_seconds, 1),
                "expected": {k: [float(s), d] for k, s, d in zip(keys, scores, decide(scores, threshold))},
            }
            sizes = {f.name: f.stat().st_size for f in (staging / category).rglob("*") if f.is_file()}
            log(f"{category}: image AUROC {metrics['image_auroc']:.3f}, threshold {threshold:.4g}, "
                f"files {sizes}")
        atomic_write_json(staging / MANIFEST, manifest)
        atomic_replace_dir(staging, out, SAMPLE_MODEL_SET, overwrite=True)
    return manifest


def robust_max_f1(evaluation) -> tuple[str, float | None]:
    """Max F1, but where good and defective scores are separated (the sample data), the cut is
    placed midway in the gap instead of on the lowest defect score: a threshold equal to an
    image's score flips that image's decision with the last bits of float noise (torch vs ONNX
    differ by ~1e-4 here, which is how this was found)."""
    labels = np.array([r.is_anomalous for r in evaluation.records])
    scores = np.asarray(evaluation.scores, dtype=np.float64)
    if labels.any() and (~labels).any() and scores[~labels].max() < scores[labels].min():
        return "manual", float((scores[~labels].max() + scores[labels].min()) / 2)
    return "max_f1", None


def _strip_machine_paths(meta_path: Path, category: str) -> None:
    """The training record names this machine's folder; ship a portable description instead."""
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if "training" in meta:
        meta["training"]["root"] = f"(shipped sample data)/{category}"
    atomic_write_json(meta_path, meta)


# --------------------------------------------------------------------------- check (no torch)
@dataclass(frozen=True)
class CheckResult:
    category: str
    n_images: int
    max_score_error: float
    decision_mismatches: tuple[str, ...]
    score_mismatches: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.decision_mismatches and not self.score_mismatches


def check_sample_models(root: Path | None = None, data_root: Path | None = None) -> list[CheckResult]:
    """Score every sample test image with the shipped ONNX graphs (onnxruntime, CPU) and compare
    scores and decisions with the manifest written at build time."""
    from workbench.core.data import read_image
    from workbench.core.export.runtime import OnnxInferencer

    data_root = Path(data_root or sample_data_dir())
    models = shipped_models(root)
    if not models:
        raise FileNotFoundError(f"No shipped sample models under {root or sample_models_dir()}.")
    results = []
    for category, model in models.items():
        keys = sorted(model.expected)
        images = [read_image(data_root / category / k) for k in keys]
        scores, _ = OnnxInferencer(model.export_dir, providers=["CPUExecutionProvider"]).predict(images)
        results.append(_compare(category, model, keys, scores, SCORE_RTOL, SCORE_ATOL))
    return results


def check_sample_packages(root: Path | None = None, data_root: Path | None = None) -> list[CheckResult]:
    """The same check with the training packages run by torch (the full Workbench bundle):
    scores within 0.1% of the ONNX ones stored at build time, identical decisions."""
    from workbench.core.data import read_image
    from workbench.core.methods.package import load_model

    data_root = Path(data_root or sample_data_dir())
    results = []
    for category, model in shipped_models(root).items():
        keys = sorted(model.expected)
        scores, _ = load_model(model.package_dir, device="cpu").predict(
            [read_image(data_root / category / k) for k in keys])
        results.append(_compare(category, model, keys, scores, 1e-3, 1e-3))
    return results


def _compare(category: str, model, keys: list[str], scores: np.ndarray, rtol: float, atol: float) -> CheckResult:
    """Scores and decisions of one category against the values stored at build time."""
    want = np.array([model.expected[k][0] for k in keys])
    close = np.isclose(scores, want, rtol=rtol, atol=atol)
    decisions = decide(scores, model.threshold)
    return CheckResult(category, len(keys), float(np.max(np.abs(scores - want))) if keys else 0.0,
                       tuple(k for k, d in zip(keys, decisions) if d != model.expected[k][1]),
                       tuple(k for k, c in zip(keys, close) if not c))


# --------------------------------------------------------------------------- sample workspace
SAMPLE_MODELS_SETTING = "sample_models_installed"


def install_into_workspace(workspace, data_root: Path, root: Path | None = None) -> list:
    """Register a copy of each shipped model with the workspace's sample datasets.

    Datasets are matched by folder (``data_root``, the shipped sample data) and category. The
    package is copied into the workspace's ``models/`` (calibrating writes into it, and the
    installed package folder may be read-only). Each category is installed once: a model the
    user deleted is not brought back. Returns the new :class:`ModelEntry` objects.
    """
    from workbench.core.methods.package import read_metadata

    models = shipped_models(root)
    done = set(workspace.get_setting(SAMPLE_MODELS_SETTING, []) or [])
    added = []
    target_root = Path(data_root).resolve()
    for entry in workspace.datasets():
        model = models.get(entry.category or "")
        if model is None or entry.category in done or entry.root.resolve() != target_root:
            continue
        path = workspace.new_model_dir(METHOD)
        staging = path.with_name(f".{path.name}.copy")
        shutil.copytree(model.package_dir, staging)
        staging.rename(path)
        params = read_metadata(path)["params"]
        added.append(workspace.add_model(entry.id, METHOD, path, params, dict(model.metrics),
                                         name=f"{METHOD} (pre-trained sample)"))
        done.add(entry.category)
        workspace.set_setting(SAMPLE_MODELS_SETTING, sorted(done))
    return added
