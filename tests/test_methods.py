"""Method interface: the registry, schema coercion, coreset selection and damaged packages.
(Round trips, progress, cancel and seeding of every method: ``test_method_contract.py``.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.core.methods import METHODS
from workbench.core.methods.package import ModelPackageError, load_model, save_model
from workbench.core.methods.schema import Param, resolve_params

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


def test_coreset_is_bounded_and_covers(tiny_images):
    import torch

    from workbench.core.methods.components.coreset import greedy_coreset

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


def test_damaged_packages_are_refused(fitted_method, tmp_path):
    model, _ = fitted_method("padim")
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


OLD_PACKAGES = Path(__file__).parent / "data" / "old_packages"


@pytest.mark.parametrize("method", ["dfm", "fastflow"])
def test_packages_saved_by_earlier_versions_load_and_score_the_same(method, sample_root):
    """Packages written before each method's state lived in one inference module (FastFlow's keys
    then lacked the module's ``net.`` prefix) load and give the scores they gave when saved."""
    from workbench.core.data import read_image

    expected = json.loads((OLD_PACKAGES / "expected.json").read_text())
    images = [read_image(sample_root / name) for name in expected["images"]]
    scores, maps = load_model(OLD_PACKAGES / method, device="cpu").predict(images)
    np.testing.assert_allclose(scores, expected["packages"][method]["scores"], rtol=1e-5)
    assert maps.shape == (len(images), 64, 64) and np.isfinite(maps).all()
