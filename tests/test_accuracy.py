"""Accuracy floors on the shipped sample data with default settings (the issue's 'done' bar).

Marked slow: each trains full-size models on every category (about a minute on 2 cores).
CI runs them once per run; `pytest -m "not slow"` skips them during development.
"""

from __future__ import annotations

import pytest

from workbench.core.data import load_dataset
from workbench.core.evaluation import evaluate_model
from workbench.core.training import train_model

FLOORS = {
    "patchcore": {"image_auroc": 0.95, "aupro": 0.85},
    "padim": {"image_auroc": 0.90},
}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(FLOORS))
def test_default_method_reaches_floor_on_every_category(method, sample_root, sample_categories):
    assert len(sample_categories) >= 2
    for category in sample_categories:
        dataset = load_dataset(sample_root, category=category)
        result = train_model(dataset, method, device="cpu")
        metrics = evaluate_model(result.model, dataset).metrics()
        for name, floor in FLOORS[method].items():
            assert metrics[name] >= floor, f"{method} on {category}: {name} {metrics[name]:.3f} < {floor}"
