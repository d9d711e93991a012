"""Threshold presets with exact definitions, and an honest uncertainty for the chosen cut.

A sample is NG when ``score >= threshold`` everywhere in the workbench. Each preset returns the
threshold that satisfies its definition on the given scores:

* ``max_f1``: the threshold maximising F1 on labelled images (highest one among ties).
* ``false_alarm``: the *lowest* threshold whose false-alarm rate on good images is <= X.
  Lowest, because among all cuts that keep false rejects acceptable it catches the most defects.
* ``recall``: the *highest* threshold whose recall on defective images is >= Y. Highest,
  because among all cuts that catch enough defects it rejects the fewest good parts.

Field notes: engineers need "at most X% false rejects on good parts" with an honest
uncertainty; :func:`rate_intervals` gives exact binomial (Clopper-Pearson) intervals,
:func:`guaranteed_threshold` a false-alarm bound with a stated confidence, and
:func:`sample_size_warning` says when the good set is too small to support the target.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special, stats

from workbench.core.metrics import f1_max

PRESETS = ("max_f1", "false_alarm", "recall", "manual")


def threshold_for_false_alarm(good_scores: np.ndarray, max_rate: float) -> float:
    """Lowest t with mean(good >= t) <= max_rate."""
    good = np.sort(np.asarray(good_scores, np.float64))[::-1]
    if good.size == 0:
        raise ValueError("No good images with scores: a false-alarm target needs good images.")
    if not 0.0 <= max_rate < 1.0:
        raise ValueError(f"The false-alarm rate must be in [0, 1); got {max_rate}.")
    allowed = int(math.floor(max_rate * good.size + 1e-9))
    # Everything strictly above the (allowed+1)-th highest good score is allowed to alarm.
    return float(np.nextafter(good[allowed], np.inf))


def threshold_for_recall(defect_scores: np.ndarray, min_recall: float) -> float:
    """Highest t with mean(defect >= t) >= min_recall."""
    bad = np.sort(np.asarray(defect_scores, np.float64))[::-1]
    if bad.size == 0:
        raise ValueError("No defective images with scores: a recall target needs labelled defects.")
    if not 0.0 < min_recall <= 1.0:
        raise ValueError(f"The recall target must be in (0, 1]; got {min_recall}.")
    needed = int(math.ceil(min_recall * bad.size - 1e-9))
    return float(bad[needed - 1])


def centred_cut(scores: np.ndarray, threshold: float) -> float:
    """The middle of the gap of ``scores`` that ``threshold`` falls in.

    Every threshold in ``(highest score below it, lowest score at or above it]`` flags exactly
    the same images, so the presets' decisions on the calibration data do not change. The
    middle keeps the images next to the cut as far from it as possible: a preset that returned
    a calibration image's own score (or the next float above it) would leave that image's
    decision to the last digits, which the torch and onnxruntime paths do not share (they
    agree to about 1e-5 relative). Without a score on one side, ``threshold`` is returned.
    """
    values = np.unique(np.asarray(scores, np.float64)[np.isfinite(scores)])
    i = int(np.searchsorted(values, threshold, side="left"))  # values[i - 1] < threshold <= values[i]
    if i == 0 or i == values.size:
        return float(threshold)
    return float((values[i - 1] + values[i]) / 2.0)


def choose_threshold(labels: np.ndarray, scores: np.ndarray, preset: str, target: float | None = None) -> float:
    """The preset's threshold, centred in its gap of the scores (see :func:`centred_cut`): the
    same images are flagged as by the preset's exact definition."""
    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, np.float64)
    if preset == "max_f1":
        if labels.all() or not labels.any():
            raise ValueError("Maximising F1 needs both good and defective labelled images.")
        return centred_cut(scores, float(f1_max(labels, scores)[1]))
    if target is None:
        raise ValueError(f"Preset '{preset}' needs a target value.")
    if preset == "false_alarm":
        return centred_cut(scores, threshold_for_false_alarm(scores[~labels], target))
    if preset == "recall":
        return centred_cut(scores, threshold_for_recall(scores[labels], target))
    if preset == "manual":
        return float(target)
    raise ValueError(f"Unknown threshold preset '{preset}'. Choose one of {', '.join(PRESETS)}.")


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    k: int = 0
    n: int = 0


def exact_interval(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Clopper-Pearson (exact binomial) interval for ``k`` events in ``n`` trials.

    Unlike a percentile bootstrap it never claims certainty: 0 false alarms in 50 good images
    gives [0, 7.1%], not [0, 0].
    """
    if n <= 0:
        raise ValueError("An interval needs at least one trial.")
    k, n = int(k), int(n)
    if not 0 <= k <= n:
        raise ValueError(f"An interval needs 0 <= events <= trials; got {k} of {n}.")
    # The closed form of the exact interval (quantiles of Beta distributions): the same values
    # as scipy's binomtest(k, n).proportion_ci(method="exact") to ~1e-14, in microseconds
    # instead of a root search of ~10 ms (the Threshold step recomputes it on every move).
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, alpha / 2))
    high = 1.0 if k == n else float(special.betaincinv(k + 1, n - k, 1 - alpha / 2))
    return Interval(k / n, low, high, k, n)


def rate_intervals(labels: np.ndarray, scores: np.ndarray, threshold: float, ok_threshold: float | None = None,
                   confidence: float = 0.95) -> dict[str, Interval]:
    """Exact 95% intervals of the rates at an NG threshold (and optional OK threshold).

    With a band, parts scoring in [ok_threshold, threshold) go to REVIEW: ``recall`` counts
    defective parts not passed as OK (NG or REVIEW), ``escape_rate`` defective parts passed
    as OK, ``false_alarm_rate`` good parts rejected as NG, ``review_rate`` all parts sent to
    REVIEW. Without a band these are the usual recall, escape and false-alarm rates.
    """
    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, np.float64)
    ng = ~(scores < threshold)  # NaN is never OK
    passed = scores < (threshold if ok_threshold is None else min(ok_threshold, threshold))
    review = ~ng & ~passed
    out: dict[str, Interval] = {}
    defects, goods = labels, ~labels
    if defects.any():
        out["recall"] = exact_interval(int((~passed[defects]).sum()), int(defects.sum()), confidence)
        out["escape_rate"] = exact_interval(int(passed[defects].sum()), int(defects.sum()), confidence)
    if goods.any():
        out["false_alarm_rate"] = exact_interval(int(ng[goods].sum()), int(goods.sum()), confidence)
    if labels.size:
        out["review_rate"] = exact_interval(int(review.sum()), int(labels.size), confidence)
    if ng.any():
        out["precision"] = exact_interval(int(ng[defects].sum()), int(ng.sum()), confidence)
    return out


def policy_report(labels: np.ndarray, verdicts: np.ndarray, confidence: float = 0.95) -> dict:
    """Confusion matrix (truth x verdict) and rates with exact intervals at a policy's verdicts.

    ``verdicts`` are OK / REVIEW / NG / error strings; an ``error`` counts as NG (a part whose
    score could not be computed is never passed).
    """
    labels = np.asarray(labels, bool)
    verdicts = np.asarray(verdicts, dtype=object)
    ng = (verdicts == "NG") | (verdicts == "error")
    review = verdicts == "REVIEW"
    ok = verdicts == "OK"
    matrix = {truth: {"OK": int((ok & mask).sum()), "REVIEW": int((review & mask).sum()),
                      "NG": int((ng & mask).sum())}
              for truth, mask in (("good", ~labels), ("defect", labels))}
    n_def, n_good, n = int(labels.sum()), int((~labels).sum()), int(labels.size)
    rates: dict[str, dict[str, float] | None] = {}

    def put(name: str, k: int, total: int) -> None:
        rates[name] = asdict(exact_interval(k, total, confidence)) if total else None

    put("recall", int((~ok & labels).sum()), n_def)
    put("escape_rate", int((ok & labels).sum()), n_def)
    put("false_alarm_rate", int((ng & ~labels).sum()), n_good)
    put("review_rate", int(review.sum()), n)
    put("precision", int((ng & labels).sum()), int(ng.sum()))
    return {"confusion": matrix, "rates": rates, "confidence": confidence,
            "n_good": n_good, "n_defect": n_def, "n_error": int((verdicts == "error").sum())}


# --------------------------------------------------------------------------- guarantee
def guaranteed_rank(n_good: int, target_fpr: float, confidence: float) -> int | None:
    """Smallest rank k (1-based, ascending) such that thresholding just above the k-th lowest of
    ``n_good`` good scores keeps the false-alarm rate on new good parts <= ``target_fpr``
    with probability >= ``confidence``, or None when ``n_good`` is too small.

    Distribution-free: for i.i.d. continuous good scores, F(s_(k)) ~ Beta(k, n - k + 1), so
    P(FPR > target) = P(F(s_(k)) < 1 - target) = P(Binomial(n, 1 - target) >= k).
    """
    if not 0.0 < target_fpr < 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError("The target false-alarm rate and the confidence must lie strictly between 0 and 1.")
    if n_good <= 0:
        return None
    ks = np.arange(1, n_good + 1)
    risk = stats.binom.sf(ks - 1, n_good, 1.0 - target_fpr)  # P(Bin >= k)
    ok = np.nonzero(risk <= 1.0 - confidence)[0]
    return int(ks[ok[0]]) if ok.size else None


def good_images_needed(target_fpr: float, confidence: float) -> int:
    """Fewest good images for which :func:`guaranteed_rank` exists (k = n: (1 - target)^n <= 1 - confidence)."""
    return int(math.ceil(math.log(1.0 - confidence) / math.log(1.0 - target_fpr) - 1e-12))


def guaranteed_threshold(good_scores: np.ndarray, target_fpr: float, confidence: float) -> float:
    """NG threshold with P(false-alarm rate on new good parts > target) <= 1 - confidence.

    Raises ValueError naming how many good images are needed when there are too few: a
    threshold that cannot support the claim is never returned.
    """
    good = np.sort(np.asarray(good_scores, np.float64))
    if not np.isfinite(good).all():
        raise ValueError("Some good calibration images have no finite score; fix or remove them first.")
    k = guaranteed_rank(good.size, target_fpr, confidence)
    if k is None:
        need = good_images_needed(target_fpr, confidence)
        raise ValueError(
            f"Only {good.size} good calibration images: a false-alarm rate <= {target_fpr:.2%} with "
            f"{confidence:.0%} confidence needs at least {need} good images (label more good parts, or "
            f"relax --target-fpr / --confidence).")
    return float(np.nextafter(good[k - 1], np.inf))


def weak_model_warning(image_auroc: float | None, false_alarm_rate: float | None, method: str | None = None) -> str | None:
    """A warning when the model separates poorly (image AUROC < 0.90) or the chosen threshold
    rejects more than 10% of good parts, naming stronger methods to try."""
    reasons = []
    if image_auroc is not None and image_auroc < 0.90:
        reasons.append(f"image AUROC {image_auroc:.3f} is below 0.90")
    if false_alarm_rate is not None and false_alarm_rate > 0.10:
        reasons.append(f"this threshold rejects {false_alarm_rate:.0%} of good parts")
    if not reasons:
        return None
    stronger = [m for m in ("patchcore", "padim", "efficientad") if m != method][:2]
    return (f"Weak model: {' and '.join(reasons)}. Try a stronger method ({', '.join(stronger)}), more good "
            "training images, or a larger image size before relying on this threshold.")


def sample_size_warning(n_good: int, target_rate: float) -> str | None:
    """Warn when too few good images exist to show a false-alarm rate <= target.

    Rule of three: with zero false alarms in n good images, the 95% upper bound of the true
    rate is about 3/n, so n must be at least 3/target to support the target at all.
    """
    if target_rate <= 0:
        return f"A false-alarm rate of 0 can never be demonstrated; {n_good} good images support at best {3 / max(n_good, 1):.1%}."
    needed = int(math.ceil(3.0 / target_rate))
    if n_good < needed:
        return (f"Only {n_good} good images: a false-alarm rate of {target_rate:.2%} cannot be confirmed "
                f"(need at least {needed} for 95% confidence; these support about {3 / max(n_good, 1):.1%}).")
    return None
