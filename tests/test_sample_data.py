"""The shipped ``sample_data/`` must be exactly what the committed generator produces.

Why: the sample set is the workbench's demo and the fixture of the slow end-to-end tests.
If the generator and the committed PNGs drift apart, results in the docs can no longer be
reproduced, and a broken mask would silently corrupt every pixel-level metric.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from workbench.core.data import synthetic

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "workbench" / "sample_data"
CATEGORIES = sorted(synthetic.CATEGORIES)


def _read(path: Path) -> np.ndarray:
    """Decoded pixels (compare pixels, not bytes: zlib builds may encode differently)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, f"unreadable: {path}"
    return img


def _pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One category regenerated from scratch (the washer: the cheaper one to render)."""
    out = tmp_path_factory.mktemp("regen")
    synthetic.generate(out, ["washer"])
    return out


def test_committed_layout_and_counts() -> None:
    assert (SAMPLE_DATA / "README.md").is_file()
    for cat in CATEGORIES:
        root = SAMPLE_DATA / cat
        assert len(_pngs(root / "train" / "good")) >= 40
        assert len(_pngs(root / "test" / "good")) >= 15
        defects = sorted(p.name for p in (root / "test").iterdir() if p.name != "good")
        assert len(defects) == 3
        assert sorted(p.name for p in (root / "ground_truth").iterdir()) == defects
        for d in defects:
            images = _pngs(root / "test" / d)
            assert len(images) == synthetic.N_PER_DEFECT
            assert _pngs(root / "ground_truth" / d) == [n.replace(".png", "_mask.png") for n in images]


def test_regenerated_category_is_pixel_identical(regenerated: Path) -> None:
    committed, fresh = SAMPLE_DATA / "washer", regenerated / "washer"
    files = sorted(p.relative_to(committed) for p in committed.rglob("*.png"))
    assert files == sorted(p.relative_to(fresh) for p in fresh.rglob("*.png"))
    for rel in files:
        a, b = _read(committed / rel), _read(fresh / rel)
        assert a.shape == b.shape and a.dtype == b.dtype, rel
        assert np.array_equal(a, b), f"{rel} differs from a fresh render"


@pytest.mark.parametrize("category", CATEGORIES)
def test_images_are_256_rgb_and_masks_binary(category: str) -> None:
    root = SAMPLE_DATA / category
    for path in sorted(root.glob("t*/*/*.png")):  # train/ and test/
        img = _read(path)
        assert img.shape == (256, 256, 3) and img.dtype == np.uint8, path
    for path in sorted((root / "ground_truth").glob("*/*.png")):
        mask = _read(path)
        assert mask.shape == (256, 256) and mask.dtype == np.uint8, path
        assert set(np.unique(mask)) == {0, 255}, f"{path} is empty or not 0/255"
        area = (mask > 0).mean()
        assert 0.0005 < area < 0.06, f"{path}: defect covers {area:.2%} of the image"


@pytest.mark.parametrize("category", CATEGORIES)
def test_masks_are_exactly_where_the_image_differs_from_the_clean_render(category: str) -> None:
    """Outside the mask every pixel equals the defect-free render of the same scene; inside,
    (nearly) every pixel was changed. Uses the committed files, so it also checks them."""
    root = SAMPLE_DATA / category
    for label in sorted(synthetic.CATEGORIES[category]().defects):
        for i in range(synthetic.N_PER_DEFECT):
            sample = synthetic.render(category, "test", label, i)
            image = cv2.cvtColor(_read(root / "test" / label / f"{i:03d}.png"), cv2.COLOR_BGR2RGB)
            mask = _read(root / "ground_truth" / label / f"{i:03d}_mask.png") > 0
            changed = (image != sample.clean).any(axis=2)
            where = f"{category}/{label}/{i:03d}"
            assert not changed[~mask].any(), f"{where}: pixels outside the mask differ"
            assert changed[mask].mean() > 0.9, f"{where}: mask covers unchanged pixels"


def test_good_images_are_not_duplicates() -> None:
    """Good images must vary (pose, light, texture phase), or a model learns nothing."""
    for cat in CATEGORIES:
        imgs = [_read(p) for p in sorted((SAMPLE_DATA / cat / "train" / "good").glob("*.png"))[:5]]
        for a, b in zip(imgs, imgs[1:]):
            assert np.abs(a.astype(int) - b.astype(int)).mean() > 2.0
