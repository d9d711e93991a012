"""Tests for workbench.core.metrics: hand-checked cases plus slow, obvious references."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from scipy import ndimage, stats

from workbench.core import metrics
from workbench.core.metrics import (
    Confusion,
    ProCurve,
    aupro,
    confusion_at,
    downsample_curve,
    f1_max,
    image_auroc,
    pixel_auroc,
    pixel_f1_max,
    pr_curve,
    pro_curve,
    resize_map,
    resize_mask,
    roc_curve,
)
from workbench.core.metrics import _ranking

# --------------------------------------------------------------------------- references


def label_8_connected(mask: np.ndarray) -> list[np.ndarray]:
    """Regions of a bool mask by breadth-first flood fill over the 8 neighbours."""
    seen = np.zeros_like(mask, dtype=bool)
    regions = []
    height, width = mask.shape
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        region = np.zeros_like(mask, dtype=bool)
        queue = deque([start])
        seen[start] = True
        while queue:
            r, c = queue.popleft()
            region[r, c] = True
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < height and 0 <= cc < width and mask[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        queue.append((rr, cc))
        regions.append(region)
    return regions


def reference_pro_curve(masks, maps):
    """Straight from the definition: one full pass over all pixels per distinct threshold."""
    masks = [np.asarray(m) > 0 for m in masks]
    maps = [np.asarray(a, dtype=np.float32) for a in maps]  # metrics compare at float32
    regions = [(i, region) for i, m in enumerate(masks) for region in label_8_connected(m)]
    n_ok = sum(int((~m).sum()) for m in masks)
    fpr, pro, thresholds = [0.0], [0.0], [np.inf]
    for t in sorted({float(v) for a in maps for v in a.ravel()}, reverse=True):
        flagged = [a >= t for a in maps]
        fpr.append(sum(int((f & ~m).sum()) for f, m in zip(flagged, masks)) / n_ok)
        pro.append(np.mean([(flagged[i] & r).sum() / r.sum() for i, r in regions]))
        thresholds.append(t)
    fpr.append(1.0)
    pro.append(1.0)
    thresholds.append(-np.inf)
    return np.array(fpr), np.array(pro), np.array(thresholds)


def reference_area(fpr, pro, limit):
    """Trapezoids segment by segment, the last one cut at the limit by interpolation."""
    area = 0.0
    for x0, y0, x1, y1 in zip(fpr[:-1], pro[:-1], fpr[1:], pro[1:]):
        if x0 >= limit:
            break
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += (limit - x0) * (y0 + y_limit) / 2
            break
    return area / limit


def brute_force_f1(labels, scores):
    """Best F1 and its highest threshold, trying every observed score."""
    labels = np.asarray(labels, dtype=bool)
    best, best_t = -1.0, None
    for t in sorted(set(np.asarray(scores).tolist()), reverse=True):
        flagged = np.asarray(scores) >= t
        tp = int((flagged & labels).sum())
        fp = int((flagged & ~labels).sum())
        fn = int((~flagged & labels).sum())
        f1 = 2 * tp / (2 * tp + fp + fn)
        if f1 > best:
            best, best_t = f1, t
    return best, best_t


def mann_whitney_auc(labels, scores):
    """P(defective score > good score) + 0.5 P(equal), over all pairs."""
    labels = np.asarray(labels, dtype=bool)
    pos, neg = np.asarray(scores)[labels], np.asarray(scores)[~labels]
    greater = (pos[:, None] > neg[None, :]).sum()
    equal = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * equal) / (pos.size * neg.size)


def random_case(rng: np.random.Generator, quantised: bool, n_images: int = 6):
    """Blob masks of varying image sizes (some images good) with noisy, correlated maps."""
    masks, maps = [], []
    for i in range(n_images):
        shape = tuple(rng.integers(6, 16, size=2))
        if i % 3 == 0:
            mask = np.zeros(shape, dtype=bool)
        else:
            noise = ndimage.gaussian_filter(rng.normal(size=shape), sigma=1.2)
            mask = noise > np.quantile(noise, rng.uniform(0.6, 0.9))
        amap = rng.normal(size=shape) + rng.uniform(0.5, 2.0) * mask
        if quantised:
            amap = np.round(amap * 2) / 2  # few distinct values: many ties
        masks.append(mask.astype(np.uint8) * 255)
        maps.append(amap.astype(np.float32))
    return masks, maps


# ------------------------------------------------------------------------- PRO / AUPRO


def two_image_example():
    """One good 2x2 image and one 3x5 image with regions A (1 px) and B (2 px)."""
    good_mask = np.zeros((2, 2), dtype=bool)
    good_map = np.array([[0.95, 0.0], [0.0, 0.0]], dtype=np.float32)
    mask = np.zeros((3, 5), dtype=bool)
    mask[0, 0] = True  # region A
    mask[0, 3:5] = True  # region B
    amap = np.full((3, 5), 0.1, dtype=np.float32)
    amap[0, 0] = 0.9  # A fully found at 0.9
    amap[0, 3], amap[0, 4] = 0.8, 0.3  # B half found at 0.8, fully at 0.3
    amap[2, 0], amap[2, 4] = 0.85, 0.5  # two OK pixels scoring high
    return [good_mask, mask], [good_map, amap]


def test_hand_computed_curve_and_area():
    # 16 OK pixels (4 good + 12 in the defective image), 2 regions.
    # Descending: 0.95 OK, 0.9 A, 0.85 OK, 0.8 B/2, 0.5 OK, 0.3 B/2, 0.1 x10 OK, 0.0 x3 OK.
    curve = pro_curve(*two_image_example())
    expected_fpr = [0, 1 / 16, 1 / 16, 2 / 16, 2 / 16, 3 / 16, 3 / 16, 13 / 16, 1, 1]
    expected_pro = [0, 0, 0.5, 0.5, 0.75, 0.75, 1, 1, 1, 1]
    expected_t = [np.inf, 0.95, 0.9, 0.85, 0.8, 0.5, 0.3, 0.1, 0.0, -np.inf]
    np.testing.assert_allclose(curve.fpr, expected_fpr, atol=1e-12)
    np.testing.assert_allclose(curve.pro, expected_pro, atol=1e-12)
    np.testing.assert_array_equal(curve.thresholds, np.float32(expected_t).astype(np.float64))
    # Area to 0.3: widths 1/16 at PRO 0, 0.5, 0.75, then PRO 1 from 3/16 to 0.3.
    expected = (0 / 16 + 0.5 / 16 + 0.75 / 16 + (0.3 - 3 / 16) * 1.0) / 0.3
    assert aupro(*two_image_example()) == pytest.approx(expected, abs=1e-12)
    assert aupro(*two_image_example(), fpr_limit=1.0) == pytest.approx(14.25 / 16, abs=1e-12)
    # Limit inside a sloped part: halfway between (0, 0) and (1/16, 0) is still PRO 0.
    assert aupro(*two_image_example(), fpr_limit=1 / 32) == pytest.approx(0.0, abs=1e-12)


def test_regions_are_8_connected():
    # (0,0) touches (1,1) only diagonally: 8-connectivity gives one region of 3 pixels,
    # 4-connectivity would give {(0,0)} and {(1,1),(1,2)}.
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = mask[1, 1] = mask[1, 2] = True
    amap = np.zeros((4, 4), dtype=np.float32)
    amap[0, 0] = 1.0
    curve = pro_curve([mask], [amap])
    np.testing.assert_allclose(curve.fpr, [0, 0, 1, 1])
    np.testing.assert_allclose(curve.pro, [0, 1 / 3, 1, 1])  # 4-connected: (1 + 0) / 2


@pytest.mark.parametrize("mask_dtype", [bool, np.uint8, np.float32])
def test_perfect_inverted_and_constant_maps(mask_dtype):
    rng = np.random.default_rng(3)
    masks = [np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8))]
    masks[1][1:3, 1:4] = 1
    masks[2][5:8, 0:2] = 1
    masks[2][0, 7] = 1
    masks = [m.astype(mask_dtype) for m in masks]
    perfect = [(m > 0) * 1.0 + 0.1 * rng.random(m.shape) * (m == 0) for m in masks]
    perfect = [p.astype(np.float32) for p in perfect]
    assert aupro(masks, perfect) == pytest.approx(1.0, abs=1e-12)
    assert pixel_auroc(masks, perfect) == pytest.approx(1.0, abs=1e-12)
    inverted = [-p for p in perfect]
    assert aupro(masks, inverted) == pytest.approx(0.0, abs=1e-12)
    assert pixel_auroc(masks, inverted) == pytest.approx(0.0, abs=1e-12)
    # All scores tie: one point (1, 1) after (0, 0); the line y = x up to 0.3 has area
    # 0.3 * 0.3 / 2, normalised by 0.3 -> 0.15.
    constant = [np.full(m.shape, 0.7, dtype=np.float32) for m in masks]
    curve = pro_curve(masks, constant)
    np.testing.assert_allclose(curve.fpr, [0, 1, 1])
    np.testing.assert_allclose(curve.pro, [0, 1, 1])
    assert aupro(masks, constant) == pytest.approx(0.15, abs=1e-12)
    assert pixel_auroc(masks, constant) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("quantised", [True, False])
def test_pro_matches_reference(seed, quantised):
    rng = np.random.default_rng(seed)
    masks, maps = random_case(rng, quantised, n_images=6 if quantised else 4)
    ref_fpr, ref_pro, ref_t = reference_pro_curve(masks, maps)
    curve = pro_curve(masks, maps)
    np.testing.assert_allclose(curve.fpr, ref_fpr, rtol=0, atol=1e-9)
    np.testing.assert_allclose(curve.pro, ref_pro, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(curve.thresholds, ref_t)
    for limit in (0.01, 0.05, 0.3, 0.77, 1.0):
        value = aupro(masks, maps, fpr_limit=limit)
        assert value == pytest.approx(reference_area(ref_fpr, ref_pro, limit), abs=1e-9)
        assert 0.0 <= value <= 1.0


@pytest.mark.parametrize("chunk", [1, 2, 7, 64])
def test_chunked_walk_matches_reference(monkeypatch, chunk):
    """Tie runs and the early stop must survive chunk boundaries."""
    monkeypatch.setattr(_ranking, "_CHUNK", chunk)
    rng = np.random.default_rng(100 + chunk)
    masks, maps = random_case(rng, quantised=True, n_images=4)
    ref_fpr, ref_pro, _ = reference_pro_curve(masks, maps)
    curve = pro_curve(masks, maps)
    np.testing.assert_allclose(curve.fpr, ref_fpr, rtol=0, atol=1e-9)
    np.testing.assert_allclose(curve.pro, ref_pro, rtol=0, atol=1e-9)
    for limit in (0.05, 0.3, 1.0):
        expected = reference_area(ref_fpr, ref_pro, limit)
        assert aupro(masks, maps, fpr_limit=limit) == pytest.approx(expected, abs=1e-9)


def test_signed_zero_and_negative_scores_rank_as_floats():
    mask = np.array([[1, 0, 0, 0, 0, 0]], dtype=bool)
    amap = np.array([[0.0, -0.0, -1.5, -2.0, 3.0, -1e-30]], dtype=np.float32)
    curve = pro_curve([mask], [amap])
    ref_fpr, ref_pro, ref_t = reference_pro_curve([mask], [amap])
    np.testing.assert_allclose(curve.fpr, ref_fpr, atol=1e-12)
    np.testing.assert_allclose(curve.pro, ref_pro, atol=1e-12)
    np.testing.assert_array_equal(curve.thresholds, ref_t)  # 0.0 and -0.0 are one tie run


def test_aupro_stays_in_unit_interval():
    rng = np.random.default_rng(7)
    for _ in range(20):
        masks, maps = random_case(rng, quantised=bool(rng.integers(2)), n_images=3)
        if not any(m.any() for m in masks):
            continue
        assert 0.0 <= aupro(masks, maps, fpr_limit=float(rng.uniform(0.01, 1.0))) <= 1.0


def test_pro_input_errors():
    good = [np.zeros((4, 4), dtype=bool)]
    with pytest.raises(ValueError, match="no defect region"):
        aupro(good, [np.zeros((4, 4), dtype=np.float32)])
    with pytest.raises(ValueError, match="shape"):
        pro_curve([np.ones((4, 4))], [np.zeros((4, 5))])
    with pytest.raises(ValueError, match="masks"):
        pro_curve([np.ones((4, 4))], [])
    with pytest.raises(ValueError, match="NaN"):
        mask = np.eye(4, dtype=bool)
        pro_curve([mask], [np.full((4, 4), np.nan)])
    with pytest.raises(ValueError, match="OK pixels"):
        pro_curve([np.ones((2, 2))], [np.zeros((2, 2))])
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro([np.eye(3)], [np.eye(3)], fpr_limit=0.0)


# ------------------------------------------------------------------------ pixel metrics


@pytest.mark.parametrize("seed", range(4))
def test_pixel_auroc_and_f1_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    masks, maps = random_case(rng, quantised=seed % 2 == 0)
    labels = np.concatenate([m.ravel() > 0 for m in masks])
    scores = np.concatenate([a.ravel() for a in maps])
    assert pixel_auroc(masks, maps) == pytest.approx(mann_whitney_auc(labels, scores), abs=1e-12)
    f1, threshold = pixel_f1_max(masks, maps)
    ref_f1, ref_threshold = brute_force_f1(labels, scores)
    assert f1 == pytest.approx(ref_f1, abs=1e-12)
    assert threshold == ref_threshold


def test_pixel_metrics_need_both_classes():
    with pytest.raises(ValueError, match="no defect pixel"):
        pixel_auroc([np.zeros((3, 3))], [np.zeros((3, 3))])
    with pytest.raises(ValueError, match="OK pixels"):
        pixel_f1_max([np.ones((3, 3))], [np.zeros((3, 3))])


# ------------------------------------------------------------------------ image metrics


def random_image_scores(seed: int, ties: bool):
    rng = np.random.default_rng(seed)
    labels = rng.random(60) < 0.4
    scores = rng.normal(size=60) + labels
    return labels.astype(int), np.round(scores) if ties else scores


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_image_auroc_is_mann_whitney(seed, ties):
    labels, scores = random_image_scores(seed, ties)
    expected = mann_whitney_auc(labels, scores)
    assert image_auroc(labels, scores) == pytest.approx(expected, abs=1e-12)
    u = stats.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    assert expected == pytest.approx(u / ((labels == 1).sum() * (labels == 0).sum()), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_f1_max_and_confusion_match_brute_force(seed, ties):
    labels, scores = random_image_scores(seed, ties)
    f1, threshold = f1_max(labels, scores)
    ref_f1, ref_threshold = brute_force_f1(labels, scores)
    assert f1 == pytest.approx(ref_f1, abs=1e-12)
    assert threshold == ref_threshold
    assert confusion_at(labels, scores, threshold).f1 == pytest.approx(f1, abs=1e-12)
    for t in [-np.inf, np.inf, *np.unique(scores)[::7], threshold + 1e-9]:
        confusion = confusion_at(labels, scores, t)
        flagged, defective = scores >= t, labels == 1
        assert confusion == Confusion(
            tp=int((flagged & defective).sum()),
            fp=int((flagged & ~defective).sum()),
            tn=int((~flagged & ~defective).sum()),
            fn=int((~flagged & defective).sum()),
        )


def test_confusion_rates_and_zero_denominators():
    c = Confusion(tp=6, fp=2, tn=8, fn=4)
    assert c.precision == pytest.approx(6 / 8)
    assert c.recall == pytest.approx(6 / 10)
    assert c.f1 == pytest.approx(2 * 6 / (12 + 2 + 4))
    assert c.false_alarm_rate == pytest.approx(2 / 10)
    assert c.escape_rate == pytest.approx(4 / 10)
    assert c.accuracy == pytest.approx(14 / 20)
    empty = Confusion(tp=0, fp=0, tn=0, fn=0)
    rates = ["precision", "recall", "f1", "false_alarm_rate", "escape_rate", "accuracy"]
    assert [getattr(empty, r) for r in rates] == [0.0] * 6
    nothing_flagged = confusion_at([0, 0, 1], [0.1, 0.2, 0.3], threshold=1.0)
    assert nothing_flagged.precision == 0.0 and nothing_flagged.escape_rate == 1.0


def test_image_curves_are_aligned_and_ordered():
    labels, scores = random_image_scores(1, ties=True)
    for curve in (roc_curve(labels, scores), pr_curve(labels, scores)):
        assert curve.x.shape == curve.y.shape == curve.thresholds.shape
        assert curve.thresholds[0] == np.inf
        assert np.all(np.diff(curve.thresholds) < 0)
        assert np.all(np.diff(curve.x) >= 0)
    roc = roc_curve(labels, scores)
    assert (roc.x[0], roc.y[0], roc.x[-1], roc.y[-1]) == (0.0, 0.0, 1.0, 1.0)
    pr = pr_curve(labels, scores)
    assert (pr.x[0], pr.y[0], pr.x[-1]) == (0.0, 1.0, 1.0)
    # Each PR point is the precision/recall of flagging scores >= its threshold.
    for x, y, t in zip(pr.x[1:], pr.y[1:], pr.thresholds[1:]):
        c = confusion_at(labels, scores, t)
        assert (x, y) == pytest.approx((c.recall, c.precision))


def test_image_metric_errors():
    with pytest.raises(ValueError, match="good sample"):
        image_auroc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="defective sample"):
        roc_curve([0, 0], [0.2, 0.3])
    with pytest.raises(ValueError, match="defective sample"):
        f1_max([0, 0], [0.2, 0.3])
    with pytest.raises(ValueError, match="labels"):
        image_auroc([0, 1], [0.2])
    with pytest.raises(ValueError, match="0/1"):
        image_auroc([0, 2], [0.2, 0.3])
    assert f1_max([1, 1], [0.2, 0.3]) == (1.0, 0.2)  # F1 needs no good samples


# ----------------------------------------------------------------- plotting and resizing


def test_downsample_curve_keeps_ends_and_shape():
    rng = np.random.default_rng(5)
    masks, maps = random_case(rng, quantised=False, n_images=6)
    curve = pro_curve(masks, maps)
    thin = downsample_curve(curve, 25)
    assert isinstance(thin, ProCurve)
    assert 2 < thin.fpr.size <= 25
    assert (thin.fpr[0], thin.pro[0], thin.fpr[-1], thin.pro[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert thin.thresholds[0] == np.inf and thin.thresholds[-1] == -np.inf
    assert np.all(np.diff(thin.thresholds) < 0)
    assert np.all(np.isin(thin.thresholds, curve.thresholds))
    assert downsample_curve(curve, 10_000) is curve
    roc = roc_curve(*random_image_scores(0, ties=False))
    assert downsample_curve(roc, 5).x.size <= 5
    with pytest.raises(ValueError):
        downsample_curve(curve, 1)


def test_resize_map_and_mask():
    amap = np.arange(16, dtype=np.float64).reshape(4, 4)
    big = resize_map(amap, (8, 12))
    assert big.shape == (8, 12) and big.dtype == np.float64
    assert big.min() >= amap.min() and big.max() <= amap.max()
    assert resize_map(amap.astype(np.uint8), (4, 4)).dtype == np.float32
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[1:3, 1:3] = 255
    big_mask = resize_mask(mask, (8, 8))
    assert big_mask.dtype == bool and big_mask.sum() == 16  # the 2x2 block becomes 4x4
    np.testing.assert_array_equal(big_mask[2:6, 2:6], True)
    np.testing.assert_array_equal(resize_mask(mask, (4, 4)), mask > 0)
    with pytest.raises(ValueError):
        resize_map(np.zeros((2, 2, 3)), (4, 4))


def test_public_api_is_exported():
    for name in metrics.__all__:
        assert hasattr(metrics, name)
