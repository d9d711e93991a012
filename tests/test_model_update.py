"""Incremental update: reviewed good images join a fitted model without a retrain."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from workbench.core.data import load_dataset
from workbench.core.data.records import Dataset
from workbench.core.methods.images import LazyImages
from workbench.core.methods.package import load_model, save_model
from workbench.core.model_update import update_model
from workbench.core.model_versions import previous_versions, recheck_message
from workbench.core.training import train_model

SMALL = {"image_size": 64}


@pytest.fixture(scope="module")
def washer(sample_root: Path) -> Dataset:
    """The washer sample with 20 of its training images (keeps each training a few seconds)."""
    full = load_dataset(sample_root, category="washer")
    train = [r for r in full.records if r.split == "train"][:20]
    return Dataset(full.name, full.root, full.layout, train + [r for r in full.records if r.split != "train"],
                   full.report)


def _scores(model_dir: Path, paths: list[Path]) -> np.ndarray:
    return load_model(model_dir, device="cpu").predict(LazyImages(paths))[0].astype(np.float64)


def _auroc(good: np.ndarray, bad: np.ndarray) -> float:
    return float((bad[:, None] > good[None, :]).mean() + 0.5 * (bad[:, None] == good[None, :]).mean())


@pytest.mark.parametrize("method,params", [("patchcore", {**SMALL, "num_neighbors": 1}), ("spade", SMALL)])
def test_false_alarms_added_score_below_threshold_and_others_only_go_down(method, params, washer, tmp_path):
    start = time.perf_counter()
    trained = train_model(washer, method, params, device="cpu")
    train_seconds = time.perf_counter() - start
    save_model(trained.model, tmp_path / "m")
    goods = [r.path for r in washer.test if r.is_good]
    bads = [r.path for r in washer.test if r.is_anomalous]
    before_good, before_bad = _scores(tmp_path / "m", goods), _scores(tmp_path / "m", bads)
    order = np.argsort(before_good)[::-1]
    threshold = 0.5 * (before_good[order[1]] + before_good[order[2]])  # the two worst good parts are false alarms
    false_alarms = [goods[i] for i in order[:2]]

    start = time.perf_counter()
    outcome = update_model(tmp_path / "m", false_alarms, device="cpu")
    update_seconds = time.perf_counter() - start
    print(f"\n{method}: update {update_seconds:.2f} s vs full retrain {train_seconds:.2f} s "
          f"(ratio {train_seconds / update_seconds:.1f}x)")

    after_good, after_bad = _scores(tmp_path / "m", goods), _scores(tmp_path / "m", bads)
    for i in order[:2]:
        assert after_good[i] < threshold, f"added image {goods[i].name} still scores {after_good[i]} >= {threshold}"
    # a kNN score over a larger bank can only go down (PatchCore with plain max patch distance; SPADE's image kNN)
    assert np.all(after_good <= before_good + 1e-5)
    assert np.all(after_bad <= before_bad + 1e-5)
    assert _auroc(after_good, after_bad) >= _auroc(before_good, before_bad) - 0.05  # defects still stand out
    assert update_seconds < train_seconds

    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["package_version"] == 2 and outcome.version == 2
    added = meta["updates"][-1]["added"]
    assert [Path(a["path"]).name for a in added] == [p.name for p in false_alarms]
    assert all(len(a["sha256"]) == 64 for a in added)
    assert recheck_message(meta) is not None
    # the old version stays loadable and scores as before
    (old,) = previous_versions(tmp_path / "m")
    assert old.name == "v1"
    np.testing.assert_array_equal(_scores(old, goods), before_good)


def test_update_refuses_images_already_in_the_training_set(washer, tmp_path):
    trained = train_model(washer, "spade", SMALL, device="cpu")
    save_model(trained.model, tmp_path / "m")
    with pytest.raises(ValueError, match="already in the training set"):
        update_model(tmp_path / "m", [washer.train[0].path], device="cpu")


@pytest.mark.parametrize("method", ["padim", "dfm"])
def test_statistics_update_equals_a_fit_on_old_plus_new_images(method, washer, tmp_path):
    goods = [r.path for r in washer.test if r.is_good]
    added = goods[:4]
    old = Dataset(washer.name, washer.root, washer.layout, [r for r in washer.records if r.split == "train"][:12],
                  washer.report)
    trained = train_model(old, method, SMALL, device="cpu", holdout_fraction=0.0)
    save_model(trained.model, tmp_path / "m")
    update_model(tmp_path / "m", added, tmp_path / "m2", device="cpu")
    full = train_model(old, method, SMALL, device="cpu", holdout_fraction=0.0).model
    full.fit(LazyImages([r.path for r in old.train] + added))
    probe = LazyImages([r.path for r in washer.test][::3])
    expected = full.predict(probe)[0]
    got = _scores(tmp_path / "m2", probe.paths)
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-4)
    assert not np.allclose(_scores(tmp_path / "m", probe.paths), expected, rtol=2e-3, atol=1e-4)  # it did change
