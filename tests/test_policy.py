"""The inspection policy (workbench.core.calibration.policy): one decision rule everywhere."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import stats

from workbench.core.calibration import (InspectionPolicy, PolicyError, exact_interval, guaranteed_threshold,
                                        load_policy, policy_report, rate_intervals, weak_model_warning,
                                        write_policy)
from workbench.core.calibration.thresholds import good_images_needed, guaranteed_rank

REPO = Path(__file__).resolve().parents[1]


def blob_map(shape=(40, 60), blobs=((10, 10, 2), (25, 40, 6)), base=0.1, peak=1.0) -> np.ndarray:
    """A map with square blobs (row, col, half-size) of value ``peak`` on ``base``."""
    amap = np.full(shape, base, np.float32)
    for r, c, h in blobs:
        amap[r - h:r + h, c - h:c + h] = peak
    return amap


# ----------------------------------------------------------------------------- the rule
def test_band_gives_review_between_the_two_thresholds_and_non_finite_is_never_ok():
    policy = InspectionPolicy(ng_threshold=2.0, ok_threshold=1.0)
    assert [policy.verdict(s) for s in (0.5, 1.0, 1.5, 1.999, 2.0, 7.0)] == ["OK", "REVIEW", "REVIEW", "REVIEW", "NG", "NG"]
    for bad in (math.nan, math.inf, -math.inf):
        assert policy.verdict(bad) == "error"
        assert InspectionPolicy(ng_threshold=2.0).verdict(bad) == "error"
    assert InspectionPolicy().verdict(5.0) == ""  # no threshold: no verdict
    assert InspectionPolicy(ng_threshold=2.0).verdict(1.5) == "OK"  # no band: the usual OK / NG
    assert policy.margin(1.2) == pytest.approx(0.2) and policy.margin(0.4) == pytest.approx(0.6)
    assert policy.margin(2.5) == pytest.approx(0.5)
    with pytest.raises(PolicyError, match="must not be above"):
        InspectionPolicy(ng_threshold=1.0, ok_threshold=2.0)
    with pytest.raises(PolicyError, match="finite"):
        InspectionPolicy(ng_threshold=math.nan)


def test_min_area_removes_small_regions_from_outline_count_and_area():
    amap = blob_map()  # a 4x4 blob (16 px) and a 12x12 blob (144 px) at map resolution
    plain = InspectionPolicy(ng_threshold=0.5, pixel_threshold=0.5)
    d0 = plain.decide(1.0, amap, amap.shape)
    assert d0.verdict == "NG" and d0.regions == 2 and d0.defect_area_px == 16 + 144
    d1 = plain.replace(min_defect_area=20).decide(1.0, amap, amap.shape)
    assert d1.regions == 1 and d1.defect_area_px == 144 and not d1.region[10, 10] and d1.region[25, 40]
    # the minimum area counts pixels of the original image: at twice the size the small blob has 64 px
    d2 = plain.replace(min_defect_area=20).decide(1.0, amap, (80, 120))
    assert d2.regions == 2 and d2.region.shape == (80, 120)
    assert plain.decide(0.1, amap, amap.shape).defect_area_px == 0  # OK parts have no defect area


def test_defect_inside_ignore_region_is_ok_and_ignored_pixels_never_raise_the_score():
    amap = blob_map(blobs=((25, 40, 6),), base=0.1, peak=1.0)
    ignore = np.zeros(amap.shape, bool)
    ignore[15:35, 30:50] = True
    policy = InspectionPolicy(ng_threshold=0.5, pixel_threshold=0.5)
    assert policy.decide(float(amap.max()), amap, amap.shape).verdict == "NG"
    masked = policy.replace(ignore=ignore)
    d = masked.decide(float(amap.max()), amap, amap.shape)
    assert d.verdict == "OK" and d.score == pytest.approx(0.1) and d.defect_area_px == 0 and not d.region.any()
    # the same defect outside the ignore region is still found
    outside = blob_map(blobs=((8, 8, 4),), base=0.1, peak=1.0)
    assert masked.decide(1.0, outside, outside.shape).verdict == "NG"
    # an ROI keeps only its inside
    roi = np.zeros(amap.shape, bool)
    roi[:, :20] = True
    assert policy.replace(roi=roi).decide(1.0, amap, amap.shape).verdict == "OK"
    assert policy.replace(roi=roi).decide(1.0, outside, outside.shape).verdict == "NG"


def test_image_score_not_the_map_max_is_shifted_down_by_the_ignored_peak_only():
    """Methods whose image score is not the map max (PatchCore's re-weighted score, DFM...):
    the score is kept when the map's peak is inspected and lowered by the ignored peak's excess."""
    amap = blob_map(blobs=((25, 40, 6), (8, 8, 3)), base=0.1)
    amap[8 - 3:8 + 3, 8 - 3:8 + 3] = 0.6  # a weaker blob outside the ignore region
    ignore = np.zeros(amap.shape, bool)
    ignore[15:35, 30:50] = True
    policy = InspectionPolicy(ng_threshold=3.0, ignore=ignore)
    method_score = 5.0  # e.g. a density score on another scale than the map
    assert policy.image_score(method_score, amap, amap.shape) == pytest.approx(5.0 - (1.0 - 0.6))
    no_ignored_peak = amap.copy()
    no_ignored_peak[15:35, 30:50] = 0.1
    assert policy.image_score(method_score, no_ignored_peak, amap.shape) == pytest.approx(5.0)
    rng = np.random.default_rng(0)
    for _ in range(20):  # never raised, whatever the map
        noisy = rng.random(amap.shape).astype(np.float32)
        assert policy.image_score(method_score, noisy, amap.shape) <= method_score


def test_masks_of_another_size_are_resized_and_say_so():
    ignore = np.zeros((40, 60), bool)
    ignore[:, 30:] = True
    policy = InspectionPolicy(ng_threshold=0.5, pixel_threshold=0.5, ignore=ignore)
    amap = blob_map(blobs=((20, 45, 5),))  # defect in the right half
    d = policy.decide(1.0, amap, (80, 120))
    assert d.mask_resized and d.verdict == "OK"
    assert not policy.decide(1.0, amap, (40, 60)).mask_resized


# ----------------------------------------------------------------------------- storage
OLD_PACKAGE_META = {  # model.json "thresholds" as written before policy version 2
    "format_version": 1, "method": "padim",
    "score_stats": {"image": {"n": 10, "mean": 1.0, "std": 0.1, "min": 0.8, "p50": 1.0, "max": 1.3},
                    "pixel": {"p01": 0.1, "p50": 0.2, "p99": 0.5, "p999": 0.6, "max": 0.7}},
    "thresholds": {"image": {"value": 1.25, "source": "calibration 'default'"}, "min_defect_area": 10,
                   "normalization": "quantile", "pixel": {"value": 0.55, "source": "calibration 'default'"}},
    "calibrations": {"default": {"name": "default", "image_threshold": 1.25}}, "active_calibration": "default",
}


def test_old_package_loads_with_the_same_decisions(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps(OLD_PACKAGE_META))
    policy = load_policy(tmp_path)
    assert (policy.ng_threshold, policy.ok_threshold, policy.pixel_threshold) == (1.25, None, 0.55)
    assert policy.min_defect_area == 10 and policy.normalization == "quantile" and not policy.has_masks
    scores = [1.0, 1.249, 1.25, 2.0]
    assert [policy.verdict(s) for s in scores] == ["OK", "OK", "NG", "NG"]  # old rule: NG when score >= value
    # round trip through the new format keeps it, and old readers still find the image threshold
    write_policy(tmp_path, policy)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["thresholds"]["image"]["value"] == 1.25 and meta["thresholds"]["version"] == 2
    assert meta["calibrations"] == OLD_PACKAGE_META["calibrations"]
    assert load_policy(tmp_path).fingerprint() == policy.fingerprint()


def test_masks_are_stored_as_png_in_the_package_and_resolved_only_inside_it(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps(OLD_PACKAGE_META))
    roi = np.zeros((30, 40), bool)
    roi[5:25, 5:35] = True
    ignore = np.zeros((30, 40), bool)
    ignore[10:12, 10:12] = True
    write_policy(tmp_path, load_policy(tmp_path).replace(roi=roi, ignore=ignore, ok_threshold=1.1))
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["thresholds"]["roi_mask"] == "roi_mask.png" and (tmp_path / "ignore_mask.png").is_file()
    back = load_policy(tmp_path)
    np.testing.assert_array_equal(back.roi, roi)
    np.testing.assert_array_equal(back.ignore, ignore)
    assert back.ok_threshold == 1.1
    write_policy(tmp_path, back.replace(ignore=None))
    assert not (tmp_path / "ignore_mask.png").exists()
    for evil in ("../outside.png", "/etc/passwd", "sub/roi.png"):
        meta["thresholds"]["roi_mask"] = evil
        (tmp_path / "model.json").write_text(json.dumps(meta))
        with pytest.raises(PolicyError, match="plain file name"):
            load_policy(tmp_path)
    meta["thresholds"]["roi_mask"] = "missing.png"
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(PolicyError, match="missing"):
        load_policy(tmp_path)


def test_policy_module_and_deployment_modules_import_without_torch():
    code = ("import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'timm'):\n            raise ImportError('blocked ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import workbench.core.calibration.policy, workbench.core.batch_predict, workbench.core.visualize\n"
            "import workbench.core.calibration\nprint('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ----------------------------------------------------------------------------- honest numbers
@pytest.mark.parametrize("k", [0, 3, 50])
def test_clopper_pearson_matches_scipy(k):
    iv = exact_interval(k, 50)
    low = 0.0 if k == 0 else stats.beta.ppf(0.025, k, 50 - k + 1)
    high = 1.0 if k == 50 else stats.beta.ppf(0.975, k + 1, 50 - k)
    assert iv.low == pytest.approx(low, abs=1e-9) and iv.high == pytest.approx(high, abs=1e-9)
    assert iv.estimate == k / 50
    if k == 0:
        assert iv.high == pytest.approx(0.0711, abs=1e-4)  # not the bootstrap's false [0, 0]
    # and scipy's own exact binomial interval (a root search; ours is its closed form)
    ci = stats.binomtest(k, 50).proportion_ci(confidence_level=0.95, method="exact")
    assert iv.low == pytest.approx(ci.low, abs=1e-9) and iv.high == pytest.approx(ci.high, abs=1e-9)


def test_exact_interval_closed_form_equals_scipy_binomtest_everywhere():
    for n in (1, 2, 7, 39, 120):
        for k in range(n + 1):
            for confidence in (0.9, 0.95, 0.99):
                iv = exact_interval(k, n, confidence)
                ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
                assert (iv.low, iv.high) == pytest.approx((ci.low, ci.high), abs=1e-9)
    with pytest.raises(ValueError):
        exact_interval(5, 4)


def test_vectorised_verdicts_equal_the_one_image_rule():
    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.normal(1.0, 1.0, 500), [np.nan, np.inf, -np.inf, 0.5, 1.5, 2.0]])
    for policy in (InspectionPolicy(), InspectionPolicy(ng_threshold=1.5),
                   InspectionPolicy(ng_threshold=2.0, ok_threshold=0.5),
                   InspectionPolicy(ng_threshold=1.0, ok_threshold=1.0)):
        assert list(policy.verdicts(scores)) == [policy.verdict(s) for s in scores]


def test_rates_and_policy_report_count_review_and_errors():
    labels = np.array([False] * 4 + [True] * 4)
    scores = np.array([0.1, 0.2, 1.5, 3.0, 0.5, 1.2, 2.5, np.nan])
    policy = InspectionPolicy(ng_threshold=2.0, ok_threshold=1.0)
    report = policy_report(labels, policy.verdicts(scores))
    assert report["confusion"]["good"] == {"OK": 2, "REVIEW": 1, "NG": 1}
    assert report["confusion"]["defect"] == {"OK": 1, "REVIEW": 1, "NG": 2}  # NaN -> error -> counted NG
    assert report["rates"]["recall"]["estimate"] == 0.75 and report["rates"]["escape_rate"]["estimate"] == 0.25
    assert report["rates"]["false_alarm_rate"]["estimate"] == 0.25
    assert report["rates"]["review_rate"]["estimate"] == 2 / 8
    iv = rate_intervals(labels, scores, 2.0, 1.0)
    assert iv["recall"].k == 3 and iv["review_rate"].k == 2 and iv["false_alarm_rate"].k == 1


def test_guaranteed_threshold_exceeds_the_target_rate_in_at_most_5_percent_of_draws():
    target, confidence, n = 0.05, 0.95, 120
    k = guaranteed_rank(n, target, confidence)
    exact_risk = stats.binom.sf(k - 1, n, 1 - target)
    assert exact_risk <= 1 - confidence
    rng = np.random.default_rng(7)
    exceed = 0
    draws = 2000
    for _ in range(draws):
        threshold = guaranteed_threshold(rng.normal(size=n), target, confidence)
        exceed += stats.norm.sf(threshold) > target  # the true false-alarm rate on new good parts
    assert exceed / draws <= 1 - confidence
    # a plain empirical quantile (the 'false_alarm' preset) does not keep that promise
    from workbench.core.calibration import threshold_for_false_alarm

    naive = sum(stats.norm.sf(threshold_for_false_alarm(rng.normal(size=n), target)) > target for _ in range(500))
    assert naive / 500 > 0.2


def test_guaranteed_threshold_refuses_with_too_few_good_images_and_says_how_many():
    assert good_images_needed(0.01, 0.95) == 299
    assert guaranteed_rank(298, 0.01, 0.95) is None and guaranteed_rank(299, 0.01, 0.95) == 299
    with pytest.raises(ValueError, match="needs at least 299 good images"):
        guaranteed_threshold(np.arange(50.0), 0.01, 0.95)


def test_weak_model_warning_names_stronger_methods():
    assert weak_model_warning(0.99, 0.02) is None
    text = weak_model_warning(0.735, 0.6, "dfm")
    assert "0.735" in text and "60%" in text and "patchcore" in text
    assert "patchcore" not in weak_model_warning(0.8, None, "patchcore")


def test_no_ignored_pixel_counts_in_image_scores_pixel_auroc_or_pro(tiny_dataset):
    """Changing the maps inside the ignore region changes no metric; outside it, they do."""
    from workbench.core.evaluation import evaluate_predictions

    records = tiny_dataset.test
    shape = (256, 256)
    rng = np.random.default_rng(3)
    maps = rng.random((len(records), *shape)).astype(np.float32)
    for i, r in enumerate(records):
        if r.mask_path is not None:
            gt = cv2.imread(str(r.mask_path), cv2.IMREAD_GRAYSCALE) > 127
            maps[i][cv2.resize(gt.astype(np.uint8), shape[::-1]) > 0] += 0.5
    scores = maps.reshape(len(records), -1).max(axis=1)
    ignore = np.zeros(shape, bool)
    ignore[:, :96] = True
    policy = InspectionPolicy(ignore=ignore)
    base = evaluate_predictions(records, scores, maps, policy=policy)
    assert base.masked and base.pixel_auroc is not None and base.aupro is not None
    hot = maps.copy()
    hot[:, ignore] = 5.0  # "defects" everywhere in the ignored strip, in every image
    hot_scores = hot.reshape(len(records), -1).max(axis=1)
    masked = evaluate_predictions(records, hot_scores, hot, policy=policy)
    np.testing.assert_allclose(masked.scores, base.scores, rtol=1e-6)
    assert masked.pixel_auroc == pytest.approx(base.pixel_auroc) and masked.aupro == pytest.approx(base.aupro)
    assert masked.image_auroc == pytest.approx(base.image_auroc)
    unmasked = evaluate_predictions(records, hot_scores, hot)
    assert unmasked.pixel_auroc != pytest.approx(base.pixel_auroc)
    # the pixel presets of calibration (best pixel F1, above every good pixel) ignore it too
    from workbench.core.calibration import calibrate

    for preset in ("f1", "good_max"):
        want = calibrate(base, "manual", 0.0, pixel_preset=preset, policy=policy).pixel_threshold
        got = calibrate(masked, "manual", 0.0, pixel_preset=preset, policy=policy).pixel_threshold
        assert got == pytest.approx(want) and got < 5.0
    assert calibrate(unmasked, "manual", 0.0, pixel_preset="good_max").pixel_threshold >= 5.0
    # ... and so do the outline and the defect area of each decision
    for i, r in enumerate(records):
        a = policy.replace(ng_threshold=-1.0, pixel_threshold=0.9).decide(scores[i], maps[i], shape)
        b = policy.replace(ng_threshold=-1.0, pixel_threshold=0.9).decide(hot_scores[i], hot[i], shape)
        np.testing.assert_array_equal(a.region, b.region)
        assert a.defect_area_px == b.defect_area_px and not b.region[:, :96].any()


def test_a_model_json_that_is_not_an_object_is_refused_clearly(tmp_path):
    (tmp_path / "model.json").write_text("[]")
    with pytest.raises(PolicyError, match="not a model description"):
        load_policy(tmp_path)
    (tmp_path / "model.json").write_text('{"thresholds": 3}')
    with pytest.raises(PolicyError, match="not a model description"):
        load_policy(tmp_path)


def test_same_area_compares_the_inspected_pixels():
    ignore = np.zeros((4, 4), bool)
    ignore[0] = True
    a = InspectionPolicy(ng_threshold=1.0, ignore=ignore)
    assert a.same_area(a.replace(ng_threshold=2.0)) and InspectionPolicy().same_area(None)
    assert not a.same_area(InspectionPolicy()) and not a.same_area(a.replace(ignore=~ignore))
    assert not a.same_area(a.replace(roi=~ignore))


def test_presets_centre_the_cut_in_its_gap_without_changing_any_decision():
    """A preset never puts the threshold on (or a float above) a calibration image's score, whose
    decision would then hang on digits torch and onnxruntime do not share."""
    from workbench.core.calibration import choose_threshold
    from workbench.core.calibration.thresholds import centred_cut, threshold_for_false_alarm
    from workbench.core.metrics import confusion_at

    rng = np.random.default_rng(4)
    labels = np.r_[np.zeros(60, bool), np.ones(20, bool)]
    scores = np.r_[rng.normal(0, 1, 60), rng.normal(2, 1, 20)]
    for preset, target in (("max_f1", None), ("false_alarm", 0.05), ("recall", 0.9)):
        t = choose_threshold(labels, scores, preset, target)
        gap = np.sort(np.abs(scores - t))[0]
        below, above = scores[scores < t].max(), scores[scores >= t].min()
        assert t == pytest.approx((below + above) / 2) and gap > 1e-6
    exact = threshold_for_false_alarm(scores[~labels], 0.05)
    centred = choose_threshold(labels, scores, "false_alarm", 0.05)
    assert confusion_at(labels, scores, exact) == confusion_at(labels, scores, centred)
    assert centred_cut(scores, scores.max() + 1) == scores.max() + 1  # nothing above: unchanged
