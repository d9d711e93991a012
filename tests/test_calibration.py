"""Threshold presets satisfy their definitions; bootstrap coverage; calibrations persist; CLI agrees."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.core.calibration import (
    rate_intervals,
    calibrate,
    choose_threshold,
    load_calibrations,
    normalize_scores,
    sample_size_warning,
    save_calibration,
    threshold_for_false_alarm,
    threshold_for_recall,
)
from workbench.core.metrics import confusion_at, f1_max


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rate", [0.0, 0.01, 0.05, 0.2])
def test_false_alarm_preset_is_lowest_threshold_meeting_target(seed, rate):
    rng = np.random.default_rng(seed)
    good = np.round(rng.normal(0, 1, 200), 1)  # rounding creates ties
    t = threshold_for_false_alarm(good, rate)
    assert np.mean(good >= t) <= rate + 1e-12
    below = good[good < t].max()  # the next lower candidate cut would break the target
    assert np.mean(good >= below) > rate


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("recall", [0.5, 0.9, 0.95, 1.0])
def test_recall_preset_is_highest_threshold_meeting_target(seed, recall):
    rng = np.random.default_rng(seed)
    bad = np.round(rng.normal(2, 1, 37), 1)
    t = threshold_for_recall(bad, recall)
    assert np.mean(bad >= t) >= recall - 1e-12
    above = bad[bad > t]
    if above.size:  # any higher cut would miss the target
        assert np.mean(bad >= above.min()) < recall


def test_max_f1_preset_matches_metric():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(50, bool), np.ones(20, bool)]
    scores = np.r_[rng.normal(0, 1, 50), rng.normal(1.5, 1, 20)]
    t = choose_threshold(labels, scores, "max_f1")
    assert confusion_at(labels, scores, t).f1 == pytest.approx(f1_max(labels, scores)[0])


def test_exact_interval_covers_true_rate_at_stated_coverage():
    rng = np.random.default_rng(1)
    true_recall, true_far, hits_recall, hits_far, trials = 0.8, 0.1, 0, 0, 300
    for trial in range(trials):
        labels = np.r_[np.zeros(200, bool), np.ones(100, bool)]
        flagged = np.r_[rng.random(200) < true_far, rng.random(100) < true_recall]
        iv = rate_intervals(labels, flagged.astype(float), 0.5)
        hits_recall += iv["recall"].low <= true_recall <= iv["recall"].high
        hits_far += iv["false_alarm_rate"].low <= true_far <= iv["false_alarm_rate"].high
    assert abs(hits_recall / trials - 0.95) < 0.05
    assert abs(hits_far / trials - 0.95) < 0.05


def test_small_calibration_set_warns():
    assert sample_size_warning(50, 0.01) is not None and "300" in sample_size_warning(50, 0.01)
    assert sample_size_warning(500, 0.01) is None


def test_normalisations():
    stats = {"min": 1.0, "p50": 2.0, "max": 3.0}
    np.testing.assert_allclose(normalize_scores([1.0, 3.0], "minmax", stats), [0.0, 1.0])
    np.testing.assert_allclose(normalize_scores([2.0, 3.0], "quantile", stats), [0.0, 1.0])
    with pytest.raises(ValueError, match="only 'raw'"):
        normalize_scores([1.0], "minmax", None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dataset):
    """A tiny PaDiM package and its evaluation on the first sample category."""
    from workbench.core.evaluation import evaluate_model
    from workbench.core.methods.package import save_model
    from workbench.core.training import train_model

    result = train_model(tiny_dataset, "padim", {"image_size": 64}, device="cpu")
    path = save_model(result.model, tmp_path_factory.mktemp("models") / "padim")
    return path, result.model, evaluate_model(result.model, tiny_dataset)


def test_saved_calibrations_reload_and_cli_matches(trained, tiny_dataset, sample_root, tmp_path):
    from workbench.cli import main
    from workbench.core.methods.package import load_model

    path, model, evaluation = trained
    cal = calibrate(evaluation, "false_alarm", 0.1, name="strict",
                    image_stats=model.metadata["score_stats"]["image"])
    save_calibration(path, cal)
    lenient = calibrate(evaluation, "recall", 0.5, name="lenient")
    save_calibration(path, lenient, activate=False)
    stored = load_calibrations(path)
    assert set(stored) == {"strict", "lenient"}
    assert stored["strict"]["image_threshold"] == cal.image_threshold
    reloaded = load_model(path)
    assert reloaded.metadata["thresholds"]["image"]["value"] == cal.image_threshold
    assert reloaded.metadata["active_calibration"] == "strict"

    out = tmp_path / "cal.json"
    assert main(["calibrate", "--model", str(path), "--data", str(sample_root), "--category", tiny_dataset.name,
                 "--target-fpr", "0.1", "--name", "cli", "--json", str(out), "-q"]) == 0
    assert json.loads(out.read_text())["image_threshold"] == pytest.approx(cal.image_threshold)


def test_predictions_cache_round_trip_and_staleness(trained, tiny_dataset):
    import dataclasses

    from workbench.core.predictions import evaluation_for, load_predictions, save_predictions

    path, _, evaluation = trained
    assert load_predictions(path, tiny_dataset) is None
    save_predictions(path, tiny_dataset, evaluation)
    cached = evaluation_for(path, tiny_dataset)
    np.testing.assert_array_equal(cached.scores, evaluation.scores)
    np.testing.assert_array_equal(cached.maps, evaluation.maps)
    assert cached.image_auroc == evaluation.image_auroc and cached.aupro == evaluation.aupro
    fewer = dataclasses.replace(tiny_dataset, records=tiny_dataset.records[:-1])
    assert load_predictions(path, fewer) is None  # the test split changed: not reused


def test_cache_written_after_training_holds_what_the_threshold_step_needs(trained, tiny_dataset):
    """The derived results stored with the cache equal what the Threshold step computes afresh."""
    from workbench.core.predictions import load_predictions, save_predictions
    from workbench.gui.qtmodels.threshold_data import threshold_data_from_evaluation

    path, _, evaluation = trained
    save_predictions(path, tiny_dataset, evaluation, derived=True)
    cached = load_predictions(path, tiny_dataset)
    assert cached.derived is not None
    assert cached.metrics() == evaluation.metrics()
    fast = threshold_data_from_evaluation(cached)
    fresh = threshold_data_from_evaluation(evaluation)
    assert fast.pixel_thresholds == fresh.pixel_thresholds
    np.testing.assert_array_equal(fast.pro.fpr, fresh.pro.fpr)
    np.testing.assert_array_equal(fast.pro.pro, fresh.pro.pro)
    assert fast.aupro == fresh.aupro
