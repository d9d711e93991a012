"""Method interface: schema, fit/predict shapes, save/load round trip, progress, cancel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.core.jobs import CancelToken, Cancelled
from workbench.core.methods import METHODS, create_method
from workbench.core.methods.package import ModelPackageError, load_model, save_model
from workbench.core.methods.schema import Param, resolve_params

TINY = {"patchcore": {"image_size": 64, "coreset_ratio": 0.2}, "padim": {"image_size": 64}}


def test_registry_lists_both_foundation_methods():
    assert {"patchcore", "padim"} <= set(METHODS)
    for cls in METHODS.values():
        names = [p.name for p in cls.schema()]
        assert len(names) == len(set(names)), f"{cls.name} declares a parameter twice"
        assert cls.title and cls.family and cls.description


def test_schema_coerces_and_rejects_with_clear_messages():
    schema = (Param("k", "int", 3, "h", 1, 10), Param("mode", "choice", "a", "h", choices=("a", "b")),
              Param("on", "bool", False, "h"))
    assert resolve_params(schema, {"k": "7", "on": "yes"}) == {"k": 7, "mode": "a", "on": True}
    with pytest.raises(ValueError, match="'k' must be <= 10"):
        resolve_params(schema, {"k": 11})
    with pytest.raises(ValueError, match="one of a, b"):
        resolve_params(schema, {"mode": "c"})
    with pytest.raises(ValueError, match="Unknown parameter"):
        resolve_params(schema, {"kk": 1})
    with pytest.raises(ValueError, match="must be int"):
        resolve_params(schema, {"k": 2.5})


@pytest.mark.parametrize("method", ["patchcore", "padim"])
def test_fit_predict_save_load_round_trip(method, tiny_images, tmp_path):
    events = []
    model = create_method(method, device="cpu", **TINY[method])
    model.fit(tiny_images["train"], progress=events.append)
    assert events and events[-1].current == events[-1].total
    test = tiny_images["good"] + tiny_images["bad"]
    scores, maps = model.predict(test)
    assert scores.shape == (len(test),) and scores.dtype == np.float32
    assert maps.shape == (len(test), 64, 64) and maps.dtype == np.float32
    assert np.isfinite(scores).all() and np.isfinite(maps).all()
    assert scores[len(tiny_images["good"]):].mean() > scores[:len(tiny_images["good"])].mean()

    save_model(model, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["method"] == method and meta["format_version"] == 1 and meta["params"]["image_size"] == 64
    loaded = load_model(tmp_path / "m", device="cpu")
    scores2, maps2 = loaded.predict(test)
    np.testing.assert_array_equal(scores, scores2)
    np.testing.assert_array_equal(maps, maps2)


def test_same_seed_gives_identical_models(tiny_images):
    a = create_method("patchcore", device="cpu", **TINY["patchcore"]).fit(tiny_images["train"])
    b = create_method("patchcore", device="cpu", **TINY["patchcore"]).fit(tiny_images["train"])
    assert (a.state_tensors()["memory_bank"] == b.state_tensors()["memory_bank"]).all()


@pytest.mark.parametrize("method", ["patchcore", "padim"])
def test_cancel_stops_fit(method, tiny_images):
    token = CancelToken()

    def cancel_after_first(event):
        token.cancel()

    model = create_method(method, device="cpu", **TINY[method])
    with pytest.raises(Cancelled):
        model.fit(tiny_images["train"], progress=cancel_after_first, cancel=token)
    assert not model.fitted


def test_predict_before_fit_is_a_clear_error(tiny_images):
    with pytest.raises(RuntimeError, match="not trained yet"):
        create_method("padim", device="cpu").predict(tiny_images["good"])


def test_coreset_is_bounded_and_covers(tiny_images):
    import torch

    from workbench.core.methods.patchcore.coreset import greedy_coreset

    torch.manual_seed(0)
    # 64-dim features with low intrinsic dimension, like backbone patch features.
    points = torch.randn(2000, 3) @ torch.randn(3, 64)

    def radius(sel):
        return torch.cdist(points, points[sel]).min(1).values.max()

    random_radius = radius(torch.randperm(2000)[:100])
    for projection_dim in (0, 16):  # exact greedy, and greedy on a random projection
        idx = greedy_coreset(points, 100, projection_dim=projection_dim, seed=1)
        assert idx.shape == (100,) and len(set(idx.tolist())) == 100
        # Greedy k-center covers the set far better than a random subset of the same size.
        assert radius(idx) < 0.7 * random_radius


def test_damaged_packages_are_refused(tiny_images, tmp_path):
    model = create_method("padim", device="cpu", **TINY["padim"]).fit(tiny_images["train"])
    save_model(model, tmp_path / "m")
    with pytest.raises(ModelPackageError, match="not found"):
        load_model(tmp_path / "nope")
    weights = tmp_path / "m" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ModelPackageError, match="checksum"):
        load_model(tmp_path / "m")
    meta_path = tmp_path / "m" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelPackageError, match="newer workbench"):
        load_model(tmp_path / "m")
