"""Evidence: the nearest normal patch (PatchCore, SPADE) and per-stage maps (PaDiM, DFM)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.cli import main
from workbench.core.data import load_dataset, read_image
from workbench.core.data.records import Dataset
from workbench.core.evidence import EvidenceError, explain_image, nearest_normal_evidence, stage_maps
from workbench.core.methods.images import LazyImages
from workbench.core.methods.package import load_model, save_model
from workbench.core.training import train_model


@pytest.fixture(scope="module")
def washer(sample_root: Path) -> Dataset:
    full = load_dataset(sample_root, category="washer")
    train = [r for r in full.records if r.split == "train"][:16]
    return Dataset(full.name, full.root, full.layout, train + [r for r in full.records if r.split == "test"],
                   full.report)


@pytest.fixture(scope="module")
def packages(washer, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evidence")
    out = {}
    for method in ("patchcore", "spade"):
        model = train_model(washer, method, {"image_size": 64}, device="cpu", holdout_fraction=0.0).model
        out[method] = save_model(model, root / method)
    return out


def _defect(washer) -> Path:
    return [r.path for r in washer.test if r.is_anomalous][0]


def test_patchcore_nearest_patch_is_the_recorded_training_patch(packages, washer):
    model = load_model(packages["patchcore"], device="cpu")
    ev = nearest_normal_evidence(model, _defect(washer))
    # the worst patch: its distance is the largest patch score (the unsmoothed image score)
    assert ev.distance == pytest.approx(float(ev_patch_scores(model, _defect(washer)).max()), rel=1e-5)
    # provenance is right: the training image's patch at the recorded cell IS the bank entry
    train_path = Path(ev.train_path)
    assert train_path in [Path(r.path).resolve() for r in washer.train]
    emb = model.patch_embeddings([read_image(train_path)])[0]
    r, c = model.aux_tensors["source_cell"][ev.memory_entry].tolist()
    assert ev.to_json()["nearest_normal"]["box"] is not None
    torch.testing.assert_close(emb[r, c], model.module.memory_bank[ev.memory_entry], rtol=1e-4, atol=1e-4)
    # the boxes are inside both images and the pictures exist
    w, h = ev.image_size
    assert 0 <= ev.test_box[0] < ev.test_box[2] <= w and 0 <= ev.test_box[1] < ev.test_box[3] <= h
    assert set(ev.images) == {"test_patch", "normal_patch", "side_by_side"}
    info = ev.to_json()
    json.dumps(info)
    assert info["nearest_normal"]["path"] == str(train_path) and info["chosen_by"] == "highest-scoring patch"


def ev_patch_scores(model, path: Path) -> np.ndarray:
    emb = model.patch_embeddings([read_image(path)])[0]
    d, _ = model.module.search(emb.reshape(-1, emb.shape[-1]), 1)
    return d[:, 0].numpy()


def test_clicked_location_gives_the_patch_under_it(packages, washer):
    model = load_model(packages["patchcore"], device="cpu")
    images, info = explain_image(model, _defect(washer), xy=(200, 30))
    x0, y0, x1, y1 = info["box"]
    assert x0 <= 200 < x1 and y0 <= 30 < y1 and info["chosen_by"] == "given location"
    assert info["distance"] <= nearest_normal_evidence(model, _defect(washer)).distance
    with pytest.raises(EvidenceError, match="outside the image"):
        explain_image(model, _defect(washer), xy=(5000, 3))


def test_spade_nearest_patch_is_a_gallery_position_of_the_training_image(packages, washer):
    model = load_model(packages["spade"], device="cpu")
    ev = nearest_normal_evidence(model, _defect(washer))
    _, grid_feats = model._features()(model.preprocess([read_image(ev.train_path)]))
    g = model.grid
    position = ev.memory_entry % (g * g)
    torch.testing.assert_close(grid_feats[0, position], model.module.gallery_bank[ev.train_index, position],
                               rtol=1e-4, atol=1e-4)
    assert "normal_patch" in ev.images


def test_old_package_without_sources_gets_a_clear_message(packages, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(packages["patchcore"], old)
    meta = json.loads((old / "model.json").read_text())
    for key in ("memory_bank", "aux_tensors"):
        meta.pop(key)
    (old / "model.json").write_text(json.dumps(meta))
    (old / "aux_tensors.safetensors").unlink()
    model = load_model(old, device="cpu")  # still loads and scores
    with pytest.raises(EvidenceError, match="saved before the workbench recorded"):
        nearest_normal_evidence(model, np.zeros((64, 64, 3), np.uint8))


def test_explain_cli_writes_png_and_json(packages, washer, tmp_path, capsys):
    out = tmp_path / "why"
    assert main(["explain", "--model", str(packages["spade"]), str(_defect(washer)), "--out", str(out), "-q"]) == 0
    stem = _defect(washer).stem
    info = json.loads((out / f"{stem}_evidence.json").read_text())
    assert info["method"] == "spade" and info["nearest_normal"]["train_index"] is not None
    assert (out / f"{stem}_evidence.png").stat().st_size > 1000
    assert "nearest normal patch" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse refuses a malformed --xy
        main(["explain", "--model", str(packages["spade"]), str(_defect(washer)), "--xy", "12", "--out", str(out)])
    assert main(["explain", "--model", str(packages["spade"]), str(_defect(washer)), "--xy", "999,3",
                 "--out", str(out)]) == 2


@pytest.mark.parametrize("method", ["dfm", "padim"])
def test_stage_maps_add_up_to_the_map(method, washer):
    from workbench.core.methods import create_method

    model = create_method(method, device="cpu", image_size=64, smoothing_sigma=0.0)
    model.fit(LazyImages([r.path for r in washer.train][:8]))
    image = read_image(_defect(washer))
    maps = stage_maps(model, image)
    assert len(maps) >= 2 and all(m.shape == (64, 64) for m in maps.values())
    total = sum(maps.values())
    amap = model.predict([image])[1][0]
    if method == "dfm":  # the map is the upsampled error itself
        np.testing.assert_allclose(total, amap, rtol=1e-3, atol=1e-4)
    else:  # PaDiM's map is the square root of the (upsampled) squared distance
        assert np.corrcoef(np.sqrt(np.clip(total, 0, None)).ravel(), amap.ravel())[0, 1] > 0.99


def test_methods_without_a_decomposition_say_so(fitted_method):
    model, _ = fitted_method("patchcore")
    with pytest.raises(EvidenceError, match="per-stage maps exist for padim, dfm"):
        stage_maps(model, np.zeros((64, 64, 3), np.uint8))
