"""The hard real-photo benchmark generator (benchmarks/hard_data/make_hard_benchmark.py).

Runs a tiny version (small images, few per split) of one texture and one object category.
Its source photographs come from the Debian package ``mate-backgrounds``; without it these
tests skip (``apt-get install mate-backgrounds`` enables them), except the check that a
missing source is reported clearly.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.core.data import load_dataset, read_image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "hard_data" / "make_hard_benchmark.py"
CATEGORIES = ["leaf", "ladybird"]
TINY = dict(size=80, n_train=3, n_test_good=2, n_per_defect=2)


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_hard_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


hard = _load_generator()
SOURCES = hard.source_dir()
needs_sources = pytest.mark.skipif(
    bool(hard.missing_sources(SOURCES, CATEGORIES)),
    reason=f"source photographs not installed in {SOURCES}: 'apt-get install {hard.SOURCE_PACKAGE}' enables this test")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    if hard.missing_sources(SOURCES, CATEGORIES):
        pytest.skip(f"'apt-get install {hard.SOURCE_PACKAGE}' enables this test")
    return hard.generate(tmp_path_factory.mktemp("hard") / "a", CATEGORIES, seed=0, **TINY)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@needs_sources
def test_layout_loads_as_mvtec_with_a_mask_for_every_defect_image(tiny: Path):
    for category in CATEGORIES:
        ds = load_dataset(tiny, category=category)
        assert len(ds.train) == TINY["n_train"]
        goods = [r for r in ds.test if r.is_good]
        defects = [r for r in ds.test if not r.is_good]
        assert len(goods) == TINY["n_test_good"]
        assert sorted({r.label for r in defects}) == sorted(hard.DEFECTS)
        assert len(defects) == len(hard.DEFECTS) * TINY["n_per_defect"]
        assert all(r.mask_path is None for r in goods)
        for r in defects:
            mask = read_image(r.mask_path)[..., 0]
            assert set(np.unique(mask)) <= {0, 255} and mask.any(), r.mask_path
        assert read_image(ds.train[0].path).shape == (TINY["size"], TINY["size"], 3)
    assert not (tiny / "leaf" / "ground_truth" / "good").exists()


@needs_sources
@pytest.mark.parametrize("category", CATEGORIES)
def test_masks_are_exactly_where_the_defect_was_painted(category: str, tiny: Path):
    photo = hard.load_photo(SOURCES, category)
    for label in hard.DEFECTS:
        for i in range(TINY["n_per_defect"]):
            s = hard.render(photo, category, "test", label, i, seed=0, size=TINY["size"])
            inside = s.mask > 0
            changed = (s.image != s.clean).any(axis=2)
            assert inside.any() and changed.any(), (category, label, i)
            assert not (changed & ~inside).any(), f"{category}/{label}/{i}: pixels changed outside the mask"
            assert changed[inside].mean() > 0.3, f"{category}/{label}/{i}: mask much larger than the defect"
            written = read_image(tiny / category / "ground_truth" / label / f"{i:03d}_mask.png")[..., 0]
            assert np.array_equal(written > 0, inside)
            assert np.array_equal(read_image(tiny / category / "test" / label / f"{i:03d}.png"), s.image)


@needs_sources
def test_generation_is_deterministic_and_seeded(tiny: Path, tmp_path: Path):
    again = hard.generate(tmp_path / "b", CATEGORIES, seed=0, **TINY)
    assert _files(again) == _files(tiny)
    other = hard.generate(tmp_path / "c", ["leaf"], seed=1, **TINY)
    first = _files(tiny)
    assert all(first[k] != v for k, v in _files(other).items() if k.endswith("000.png"))


@needs_sources
def test_texture_train_and_test_crops_come_from_disjoint_regions(monkeypatch):
    """A test crop is never a region the model was trained on: every rotated train crop lies
    left of the split line, every test crop right of it (half-diagonal bound on the extent)."""
    spec = hard.CATEGORIES["leaf"]
    photo = np.zeros((1200, 1920, 3))
    calls = []
    monkeypatch.setattr(hard, "_warp", lambda p, centre, crop, angle, size: calls.append((centre, crop))
                        or np.zeros((size, size, 3)))
    extent = {}
    for split in ("train", "test"):
        calls.clear()
        for i in range(40):
            hard.clean_image(photo, spec, split, hard.image_rng(0, "leaf", split, "good", i), 32)
        extent[split] = [(c[0] - crop / np.sqrt(2), c[0] + crop / np.sqrt(2)) for c, crop in calls]
    split_x = spec.split * photo.shape[1]
    assert max(hi for _, hi in extent["train"]) <= split_x <= min(lo for lo, _ in extent["test"])


def test_missing_source_names_the_package_and_the_file(tmp_path: Path):
    with pytest.raises(hard.SourceMissing, match=r"apt-get install mate-backgrounds.*") as err:
        hard.generate(tmp_path / "out", ["wood"], sources=tmp_path / "nowhere", **TINY)
    assert "Wood.jpg" in str(err.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="unknown categories"):
        hard.generate(tmp_path / "out", ["bottle"], sources=tmp_path, **TINY)
    assert hard.main(["--out", str(tmp_path / "o"), "--categories", "wood", "--source-dir", str(tmp_path)]) == 2


def test_benchmark_table_has_per_kind_means():
    spec = importlib.util.spec_from_file_location("hard_benchmark", SCRIPT.parents[1] / "hard_benchmark.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    row = dict(method="padim", image_auroc=0.5, pixel_auroc=0.6, aupro=0.3, fit_s=2.0, ms_per_image=10.0)
    rows = [dict(row, category="leaf", kind="texture"), dict(row, category="wood", kind="texture", image_auroc=0.9),
            dict(row, category="ladybird", kind="object", image_auroc=1.0)]
    assert bench.means(rows, "texture")["padim"]["image_auroc"] == pytest.approx(0.7)
    assert bench.means(rows, "object")["padim"]["image_auroc"] == pytest.approx(1.0)
    text = bench.table(rows)
    assert "| **padim** | **texture mean** | 0.700 | 0.600 | 0.300 | 2.0 | 10.0 |" in text
    assert "| **padim** | **object mean** | 1.000 |" in text
