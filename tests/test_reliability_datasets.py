"""Reliability: broken or surprising dataset trees give a clear error or a report entry.

Covers issue "Reliability and security", datasets: empty folders, no good training images,
masks of the wrong size or with unusual values, masks without images, duplicate names, a
dataset folder that disappears while training, and training + evaluating on images of
mixed sizes. Cases already covered in test_data_import.py / test_cli.py are listed in
docs/reliability.md rather than repeated here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from workbench.cli import EXIT_BAD_INPUT, TqdmProgress, main
from workbench.core.data import DatasetError, ImageReadError, load_dataset, read_mask
from workbench.core.evaluation import evaluate_model
from workbench.core.training import train_model


def write(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def part(h: int, w: int, seed: int, defect: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A textured part image and its defect mask (a bright square when ``defect``)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 100 + 40 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
    img = np.clip(base[..., None] + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if defect:
        y, x = h // 3, w // 3
        img[y:y + h // 4, x:x + w // 4] = 250
        mask[y:y + h // 4, x:x + w // 4] = 255
    return img, mask


# ----------------------------------------------------------------------------- empty / no good images


@pytest.mark.parametrize("tree", [
    ["train/good/", "test/good/"],  # MVTec folders without files
    ["train/good/.DS_Store", "test/crack/a.png"],  # only hidden files in train/good
    ["good/", "scratch/"],  # plain folders without files
])
def test_empty_folders_give_a_clear_error(tree: list[str], tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for item in tree:
        path = root / item
        if item.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".png":
            write(path, part(16, 16, 0)[0])
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\0")
    with pytest.raises(DatasetError) as err:
        load_dataset(root)
    assert str(root) in str(err.value) and "good" in str(err.value)
    assert main(["train", "--data", str(root), "--out", str(tmp_path / "m"), "-q"]) == EXIT_BAD_INPUT


def test_train_model_refuses_dataset_without_good_training_images(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    for i in range(2):
        write(root / "train" / "good" / f"{i}.png", part(16, 16, i)[0])
    write(root / "test" / "good" / "0.png", part(16, 16, 5)[0])
    ds = load_dataset(root)
    ds.records = [r for r in ds.records if r.split != "train"]  # e.g. every training file vanished
    with pytest.raises(ValueError, match="no good training images"):
        train_model(ds, "padim", {"image_size": 64}, device="cpu")


# ----------------------------------------------------------------------------- masks


def test_masks_of_wrong_size_and_unusual_values(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    for i in range(3):
        write(root / "train" / "good" / f"{i}.png", part(40, 40, i)[0])
    img = part(40, 40, 10, defect=True)[0]
    mask = np.zeros((40, 40), np.uint8)
    mask[10:22, 8:20] = 255  # even edges: the half-size mask scales back exactly
    for name in ("small", "binary01", "rgb", "deep", "alpha"):
        write(root / "test" / "crack" / f"{name}.png", img)
    gt = root / "ground_truth" / "crack"
    write(gt / "small_mask.png", cv2.resize(mask, (20, 20), interpolation=cv2.INTER_NEAREST))  # wrong size
    write(gt / "binary01_mask.png", (mask > 0).astype(np.uint8))  # 0/1 instead of 0/255
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[mask > 0] = (0, 0, 255)  # red annotation on black (BGR)
    write(gt / "rgb_mask.png", rgb)
    write(gt / "deep_mask.png", (mask > 0).astype(np.uint16) * 65535)  # 16-bit
    bgra = np.zeros((40, 40, 4), np.uint8)
    bgra[..., :3] = 255  # white everywhere, but only the defect is opaque
    bgra[..., 3] = mask
    write(gt / "alpha_mask.png", bgra)
    write(gt / "nobody_mask.png", mask)  # mask without an image

    ds = load_dataset(root)
    rep = ds.report
    assert any("1 mask(s) differ in size from their image" in w and "small_mask.png" in w for w in rep.warnings)
    assert rep.orphan_masks == [gt / "nobody_mask.png"]
    assert not rep.unreadable and not rep.missing_masks
    expected = mask > 0
    for rec in ds.test:
        got = read_mask(rec.mask_path, shape=(40, 40))
        assert got.shape == (40, 40)
        assert (got == expected).all(), rec.mask_path.name


# ----------------------------------------------------------------------------- duplicate names


def test_duplicate_names(tmp_path: Path, capsys, fast_padim_package: Path) -> None:
    root = tmp_path / "part"
    for i in range(5):
        write(root / "good" / f"g{i}.png", part(32, 32, i)[0])
    img, mask = part(32, 32, 20, defect=True)
    write(root / "scratch" / "a.png", img)
    write(root / "dent" / "a.png", img)  # same name in two defect folders
    write(root / "dent" / "a.jpg", img)  # same stem, another format, same folder
    write(root / "masks" / "a_mask.png", mask)  # flat mask: which "a" does it belong to?

    ds = load_dataset(root)
    names = sorted((r.label, r.path.name) for r in ds.test if r.is_anomalous)
    assert names == [("dent", "a.jpg"), ("dent", "a.png"), ("scratch", "a.png")]
    assert any("ambiguous" in w for w in ds.report.warnings)
    assert all(r.mask_path is None for r in ds.test)  # never attached to the wrong image

    out = tmp_path / "pred"
    assert main(["predict", "--model", str(fast_padim_package), str(root / "dent"), str(root / "scratch"),
                 "--out", str(out), "-q"]) == 0
    overlays = sorted(p.name for p in out.glob("*_overlay.png"))
    assert overlays == ["a_jpg_overlay.png", "a_png-2_overlay.png", "a_png_overlay.png"]


# ----------------------------------------------------------------------------- vanishing dataset


def test_dataset_folder_disappearing_mid_training(tmp_path: Path, capsys, monkeypatch, fast_extractor) -> None:
    root = tmp_path / "cat"
    for i in range(12):
        write(root / "train" / "good" / f"{i:03d}.png", part(32, 32, i)[0])
    write(root / "test" / "good" / "000.png", part(32, 32, 99)[0])
    ds = load_dataset(root)

    def vanish(event) -> None:  # after the first batch, the network drive goes away
        shutil.rmtree(root, ignore_errors=True)

    with pytest.raises(ImageReadError) as err:
        train_model(ds, "padim", {"image_size": 64, "batch_size": 2}, device="cpu", progress=vanish)
    assert str(root / "train" / "good") in str(err.value) and "file not found" in str(err.value)

    # The same through the command line: exit 2, a message naming the file, no model folder.
    for i in range(12):
        write(root / "train" / "good" / f"{i:03d}.png", part(32, 32, i)[0])
    monkeypatch.setattr(TqdmProgress, "__call__", lambda self, event: vanish(event))
    out = tmp_path / "models" / "m"
    assert main(["train", "--data", str(root), "--method", "padim", "--param", "image_size=64",
                 "--param", "batch_size=2", "--out", str(out)]) == EXIT_BAD_INPUT
    err_text = capsys.readouterr().err
    assert "error: Cannot read image" in err_text and str(root / "train" / "good") in err_text
    assert not out.exists() and (not out.parent.exists() or not list(out.parent.iterdir()))


# ----------------------------------------------------------------------------- mixed sizes


def test_mixed_sizes_train_and_evaluate_at_each_images_own_size(tmp_path: Path, fast_extractor) -> None:
    root = tmp_path / "mixed"
    sizes = [(48, 64), (64, 48), (80, 80), (40, 100), (64, 64), (50, 70)]
    for i, (h, w) in enumerate(sizes):
        write(root / "train" / "good" / f"{i}.png", part(h, w, i)[0])
    for i, (h, w) in enumerate([(60, 90), (72, 72)]):
        write(root / "test" / "good" / f"{i}.png", part(h, w, 50 + i)[0])
    for i, (h, w) in enumerate([(90, 60), (56, 84)]):
        img, mask = part(h, w, 70 + i, defect=True)
        write(root / "test" / "spot" / f"{i}.png", img)
        write(root / "ground_truth" / "spot" / f"{i}_mask.png", mask)

    ds = load_dataset(root)
    assert not ds.report.warnings and not ds.report.unreadable
    result = train_model(ds, "padim", {"image_size": 64}, device="cpu")
    ev = evaluate_model(result.model, ds)
    assert ev.maps.shape == (4, 64, 64) and np.isfinite(ev.scores).all()
    assert ev.n_good == 2 and ev.n_defect == 2 and ev.n_without_mask == 0
    assert ev.image_auroc is not None and ev.pixel_auroc is not None and 0.0 <= ev.aupro <= 1.0
    assert ev.pixel_auroc > 0.8  # the bright square is found at each image's own resolution


# ----------------------------------------------------------------------------- fixtures


_EXTRACTORS: dict = {}


@pytest.fixture
def fast_extractor(monkeypatch):
    """Build each frozen backbone once per test session (building it is the slow part)."""
    from workbench.core.methods import base

    real = base.create_extractor

    def cached(spec, layers, device):
        key = (spec, tuple(layers), str(device))
        if key not in _EXTRACTORS:
            _EXTRACTORS[key] = real(spec, layers, device)
        return _EXTRACTORS[key]

    monkeypatch.setattr(base, "create_extractor", cached)


@pytest.fixture
def fast_padim_package(tmp_path: Path, fast_extractor) -> Path:
    from workbench.core.methods import create_method
    from workbench.core.methods.package import save_model

    images = [part(32, 32, i)[0][..., ::-1].copy() for i in range(4)]
    model = create_method("padim", device="cpu", image_size=64).fit(images)
    return save_model(model, tmp_path / "padim")
