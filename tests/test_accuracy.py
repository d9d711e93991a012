"""Accuracy floors of every registered method on the shipped sample data, default settings.

This is each method's 'done' bar from its issue. The floors are image AUROC (and AUPRO where
stated) on *every* sample category; ``None`` means no floor on that category (the README's
method table says why). Two markers keep CI fast:

* ``slow``: methods that fit in seconds (no network training): CI runs them on every run.
* ``zoo``: methods trained from scratch or distilled, minutes per category on 2 CPU cores.
  Deselected by default (see ``addopts`` in pyproject.toml); run them with ``pytest -m zoo``.
  The README's method table is the measured output of these defaults.
"""

from __future__ import annotations

import pytest

from workbench.core.data import load_dataset
from workbench.core.evaluation import evaluate_model
from workbench.core.methods.registry import METHODS
from workbench.core.training import train_model

ANY = object()  # the same floor on every category

FLOORS: dict[str, dict[object, dict[str, float] | None]] = {
    # feature-embedding baselines (near-zero training)
    "patchcore": {ANY: {"image_auroc": 0.95, "aupro": 0.85}},
    "padim": {ANY: {"image_auroc": 0.90}},
    "dfm": {ANY: {"image_auroc": 0.90}},
    "spade": {ANY: {"image_auroc": 0.90}},
    # trained feature methods (issue: method zoo I)
    "stfpm": {ANY: {"image_auroc": 0.90}},
    "reverse_distillation": {ANY: {"image_auroc": 0.90}},
    "efficientad": {ANY: {"image_auroc": 0.90}},
    "fastflow": {ANY: {"image_auroc": 0.90}},
    "cflow": {ANY: {"image_auroc": 0.90}},
    # synthetic-anomaly and reconstruction methods (issue: method zoo II)
    "cutpaste": {ANY: {"image_auroc": 0.85}},
    "draem": {ANY: {"image_auroc": 0.85}},
    "autoencoder": {"fabric": {"image_auroc": 0.70}, "washer": None},
    "ganomaly": {"fabric": {"image_auroc": 0.70}, "washer": None},
}
FAST = {"patchcore", "padim", "dfm", "spade"}
# Methods measured below the floor with the current defaults, with the reason; such a method
# stays registered (it trains, scores and exports) and the README's table shows its real numbers.
# Empty: every method meets its floor.
BELOW_FLOOR: dict[str, str] = {}


def _marks(method: str) -> list[pytest.MarkDecorator]:
    marks = [pytest.mark.slow if method in FAST else pytest.mark.zoo]
    if method in BELOW_FLOOR:
        marks.append(pytest.mark.xfail(reason=BELOW_FLOOR[method], strict=False))
    return marks


def test_every_registered_method_has_a_floor():
    assert set(FLOORS) == set(METHODS)


@pytest.mark.parametrize("method", [pytest.param(m, marks=_marks(m)) for m in FLOORS])
def test_default_method_reaches_floor_on_every_category(method, sample_root, sample_categories):
    assert len(sample_categories) >= 2
    failures = []
    for category in sample_categories:
        floors = FLOORS[method].get(category, FLOORS[method].get(ANY))
        if floors is None:
            continue
        dataset = load_dataset(sample_root, category=category)
        result = train_model(dataset, method, device="cpu")
        metrics = evaluate_model(result.model, dataset).metrics()
        failures += [f"{category}: {name} {metrics[name]:.3f} < {floor}"
                     for name, floor in floors.items() if metrics[name] < floor]
    assert not failures, f"{method} below its floor: " + "; ".join(failures)
