"""Shared fixtures: the shipped sample data and small image sets for fast tests."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "workbench" / "sample_data"


@pytest.fixture(scope="session")
def sample_root() -> Path:
    assert SAMPLE_DATA.is_dir(), "workbench/sample_data/ is missing from the checkout"
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def sample_categories(sample_root: Path) -> list[str]:
    from workbench.core.data import list_categories

    return list_categories(sample_root)


@pytest.fixture(scope="session")
def tiny_dataset(sample_root: Path, sample_categories: list[str]):
    """The first sample category, for quick fit/predict round trips."""
    from workbench.core.data import load_dataset

    return load_dataset(sample_root, category=sample_categories[0])


@pytest.fixture(scope="session")
def tiny_images(tiny_dataset) -> dict[str, list[np.ndarray]]:
    """A handful of train-good, test-good and test-defect images, loaded once."""
    from workbench.core.data import read_image

    good_test = [r for r in tiny_dataset.test if r.is_good][:3]
    bad_test = [r for r in tiny_dataset.test if r.is_anomalous][:3]
    return {
        "train": [read_image(r.path) for r in tiny_dataset.train[:8]],
        "good": [read_image(r.path) for r in good_test],
        "bad": [read_image(r.path) for r in bad_test],
    }


@pytest.fixture(scope="session")
def fit_each():
    """``fit_each(params_by_method, images)`` -> {method: (model fitted on CPU, its progress events)}."""
    from workbench.core.methods import create_method

    def fit(params_by_method: dict, images: list) -> dict:
        out = {}
        for name, params in params_by_method.items():
            events: list = []
            model = create_method(name, device="cpu", **params).fit(images, progress=events.append)
            out[name] = (model, events)
        return out

    return fit


@pytest.fixture(scope="session")
def fitted_method(tiny_images):
    """``fitted_method(name)`` -> (model fitted on CPU with its class's ``tiny_params``, its progress
    events); each method is fitted once per test session and shared by every test file."""
    from workbench.core.methods import METHODS, create_method

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            events: list = []
            with recording_param_reads():
                model = create_method(name, device="cpu", **METHODS[name].tiny_params)
            cache[name] = (model.fit(tiny_images["train"], progress=events.append), events)
        return cache[name]

    return get


class ParamReads:
    """Wraps a method's typed parameter view (``model.p``) and notes every name read from it,
    so a test can tell which schema parameters a method really uses."""

    __slots__ = ("_view", "reads")

    def __init__(self, view) -> None:
        object.__setattr__(self, "_view", view)
        object.__setattr__(self, "reads", set())

    def __getattr__(self, name: str):
        if name.startswith("_"):  # not a parameter (copy/pickle probing a half-built object)
            raise AttributeError(name)
        value = getattr(self._view, name)
        self.reads.add(name)
        return value

    def __setattr__(self, name: str, value) -> None:
        import dataclasses

        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


@contextmanager
def recording_param_reads():
    """Methods created inside get a :class:`ParamReads` as ``model.p`` (reads in ``__init__``
    count too)."""
    from workbench.core.methods import base

    original = base.params_view
    base.params_view = lambda owner, schema, values: ParamReads(original(owner, schema, values))
    try:
        yield
    finally:
        base.params_view = original
