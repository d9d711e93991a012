"""The shipped pre-trained sample models: small, reproducible, and what a fresh training gives.

Why: the instant demo (Help > Open sample workspace, the bundles' --selftest) relies on them;
a stale model (the sample data or a method changed and nobody re-ran
installer/make_sample_models.py) would show decisions that training no longer produces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workbench.core import sample_models
from workbench.package_data import sample_data_dir, sample_models_dir


def test_every_sample_category_has_a_small_calibrated_model() -> None:
    from workbench.core.data import list_categories
    from workbench.core.export.runtime import is_exported_package
    from workbench.core.methods.package import read_metadata

    models = sample_models.shipped_models()
    assert sorted(models) == list_categories(sample_data_dir())
    for category, model in models.items():
        meta = read_metadata(model.package_dir)
        assert meta["method"] == sample_models.METHOD
        assert meta["active_calibration"] == sample_models.CALIBRATION_NAME
        assert meta["thresholds"]["image"]["value"] == pytest.approx(model.threshold)
        assert is_exported_package(model.export_dir)
        size = sum(f.stat().st_size for f in (sample_models_dir() / category).rglob("*") if f.is_file())
        assert size < 6_000_000, f"{category}: {size} bytes"
        assert "/" not in meta["training"]["root"].split(")")[0]  # no machine path shipped
        assert model.metrics["image_auroc"] >= 0.95
        decisions = [d for _, d in model.expected.values()]
        assert "OK" in decisions and "NG" in decisions


def test_shipped_onnx_graphs_reproduce_the_manifest() -> None:
    results = sample_models.check_sample_models()
    assert results and all(r.ok for r in results), results
    assert all(r.n_images > 10 for r in results)


def test_check_detects_a_wrong_expected_decision(tmp_path: Path) -> None:
    import json
    import shutil

    root = tmp_path / "models"
    shutil.copytree(sample_models_dir(), root)
    manifest = json.loads((root / sample_models.MANIFEST).read_text())
    category = sorted(manifest["categories"])[0]
    key = sorted(manifest["categories"][category]["expected"])[0]
    score, decision = manifest["categories"][category]["expected"][key]
    manifest["categories"][category]["expected"][key] = [score * 1.01, "NG" if decision == "OK" else "OK"]
    (root / sample_models.MANIFEST).write_text(json.dumps(manifest))
    bad = {r.category: r for r in sample_models.check_sample_models(root)}[category]
    assert not bad.ok and bad.decision_mismatches == (key,) and bad.score_mismatches == (key,)


@pytest.mark.slow
def test_fresh_training_gives_the_shipped_decisions() -> None:
    """Train the washer model again (CPU, the fixed seed): same decisions, same scores."""
    category = "washer"
    shipped = sample_models.shipped_models()[category]
    dataset, result, evaluation = sample_models.train_sample_model(category)
    keys = [Path(r.path).relative_to(dataset.root).as_posix() for r in evaluation.records]
    assert sorted(keys) == sorted(shipped.expected)
    want = np.array([shipped.expected[k][0] for k in keys])
    np.testing.assert_allclose(evaluation.scores, want, rtol=1e-3, atol=1e-3)
    assert sample_models.decide(evaluation.scores, shipped.threshold) == [shipped.expected[k][1] for k in keys]


def test_install_into_workspace_copies_each_model_once(tmp_path: Path) -> None:
    from workbench.core.workspace import Workspace

    with Workspace.create(tmp_path / "ws") as ws:
        for category in sorted(sample_models.shipped_models()):
            ws.add_dataset("", sample_data_dir(), "mvtec", category)
        (tmp_path / "elsewhere").mkdir()
        ws.add_dataset("", tmp_path / "elsewhere", "mvtec", "washer")  # not the sample: left alone
        added = sample_models.install_into_workspace(ws, sample_data_dir())
        assert sorted(ws.dataset(m.dataset_id).category for m in added) == sorted(sample_models.shipped_models())
        for model in added:
            assert (model.path / "weights.safetensors").is_file() and model.path.is_relative_to(ws.path)
            assert model.metrics["image_auroc"] >= 0.95
        ws.delete_model(added[0].id)
        assert sample_models.install_into_workspace(ws, sample_data_dir()) == []  # once only
        assert len(ws.models()) == len(added) - 1


def test_training_packages_give_the_shipped_scores_with_torch() -> None:
    """What the full Workbench bundle's --selftest runs: the torch packages agree with the ONNX."""
    results = sample_models.check_sample_packages()
    assert results and all(r.ok for r in results), results


def test_shipped_thresholds_keep_a_margin_from_every_sample_score() -> None:
    """A threshold equal to an image's score flips that image with float noise (torch vs ONNX)."""
    for category, model in sample_models.shipped_models().items():
        scores = np.array([s for s, _ in model.expected.values()])
        gap = np.min(np.abs(scores - model.threshold)) / max(abs(model.threshold), 1.0)
        assert gap > 1e-3, f"{category}: threshold {model.threshold} within {gap:.1e} of a sample score"


def test_rebuilding_the_sample_models_never_replaces_a_foreign_folder(tmp_path):
    from workbench.core.files import OutputFolderError, check_output_dir
    from workbench.core.sample_models import SAMPLE_MODEL_SET, build_sample_models

    mine = tmp_path / "Documents"
    mine.mkdir()
    (mine / "thesis.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match="would be lost"):
        build_sample_models(mine)  # refused before any training
    assert (mine / "thesis.txt").read_text() == "mine"
    assert check_output_dir(sample_models_dir(), SAMPLE_MODEL_SET, overwrite=True)  # the shipped set: replaceable
