"""Threshold presets with exact definitions, and an honest uncertainty for the chosen cut.

A sample is NG when ``score >= threshold`` everywhere in the workbench. Each preset returns the
threshold that satisfies its definition on the given scores:

* ``max_f1``: the threshold maximising F1 on labelled images (highest one among ties).
* ``false_alarm``: the *lowest* threshold whose false-alarm rate on good images is <= X.
  Lowest, because among all cuts that keep false rejects acceptable it catches the most defects.
* ``recall``: the *highest* threshold whose recall on defective images is >= Y. Highest,
  because among all cuts that catch enough defects it rejects the fewest good parts.

Field notes: engineers need "at most X% false rejects on good parts" with an honest
uncertainty; :func:`bootstrap_rates` gives percentile intervals and
:func:`sample_size_warning` says when the good set is too small to support the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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


def choose_threshold(labels: np.ndarray, scores: np.ndarray, preset: str, target: float | None = None) -> float:
    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, np.float64)
    if preset == "max_f1":
        if labels.all() or not labels.any():
            raise ValueError("Maximising F1 needs both good and defective labelled images.")
        return float(f1_max(labels, scores)[1])
    if target is None:
        raise ValueError(f"Preset '{preset}' needs a target value.")
    if preset == "false_alarm":
        return threshold_for_false_alarm(scores[~labels], target)
    if preset == "recall":
        return threshold_for_recall(scores[labels], target)
    if preset == "manual":
        return float(target)
    raise ValueError(f"Unknown threshold preset '{preset}'. Choose one of {', '.join(PRESETS)}.")


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


def bootstrap_rates(labels: np.ndarray, scores: np.ndarray, threshold: float, n_boot: int = 2000,
                    coverage: float = 0.95, seed: int = 0) -> dict[str, Interval]:
    """Percentile bootstrap intervals for recall and false-alarm rate at ``threshold``.

    Resamples good and defective images separately (their counts are fixed by the data set),
    so each rate's interval reflects only its own sample size.
    """
    labels = np.asarray(labels, bool)
    flagged = np.asarray(scores) >= threshold
    rng = np.random.default_rng(seed)
    alpha = (1.0 - coverage) / 2.0
    out: dict[str, Interval] = {}
    for name, group in (("recall", flagged[labels]), ("false_alarm_rate", flagged[~labels])):
        if group.size == 0:
            continue
        # The number of flagged items in a resample is Binomial(n, p_hat): draw it directly.
        draws = rng.binomial(group.size, group.mean(), size=n_boot) / group.size
        out[name] = Interval(float(group.mean()), float(np.quantile(draws, alpha)),
                             float(np.quantile(draws, 1.0 - alpha)))
    return out


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
