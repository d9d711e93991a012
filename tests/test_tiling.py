"""Tiling geometry and stitching (numpy only), and the tiled predict path of torch and ONNX."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.core.tiling import (TiledImages, TilingSpec, blend_window, count_tiles, cut_tiles, predict_tiled,
                                   shrink_map, stitch, tile_boxes, tile_origins)


def test_tile_origins_cover_the_image_with_at_least_the_requested_overlap():
    for length, tile, overlap in [(2048, 256, 0.25), (1000, 256, 0.0), (257, 256, 0.5), (4000, 300, 0.1)]:
        starts = tile_origins(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] == length - tile  # flush with both edges, never hanging over
        steps = np.diff(starts)
        assert (steps <= round(tile * (1 - overlap))).all() and (steps > 0).all()
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s:s + tile] = True
        assert covered.all()
    assert tile_origins(100, 256, 0.25) == [0]  # smaller than a tile: one (padded) tile
    assert count_tiles(2048, 2048, TilingSpec(256, 0.25)) == len(tile_origins(2048, 256, 0.25)) ** 2 == 121


def test_bad_settings_are_refused_with_a_message():
    for bad in [dict(tile=8), dict(tile=256, overlap=0.95), dict(tile=256, overlap=float("nan")), dict(tile="256")]:
        with pytest.raises(ValueError, match="tiling"):
            TilingSpec(**bad)
    with pytest.raises(ValueError, match="unknown key"):
        TilingSpec.from_json({"tile": 256, "overlapp": 0.2})
    assert TilingSpec.from_metadata({}) is None
    assert TilingSpec.from_json(TilingSpec(128, 0.5, 64).to_json()) == TilingSpec(128, 0.5, 64)


def test_stitching_tiles_of_a_map_gives_the_map_back():
    """Cutting a smooth map into overlapping tiles and stitching them (Hann blending) restores it."""
    rng = np.random.default_rng(0)
    full = rng.normal(size=(300, 420)).astype(np.float32)
    spec = TilingSpec(64, 0.25)
    tiles, boxes = cut_tiles(full[..., None].repeat(3, axis=2), spec)
    back = stitch([t[..., 0] for t in tiles], boxes, full.shape, spec.tile)
    np.testing.assert_allclose(back, full, atol=1e-5)
    window = blend_window(64)
    assert window.min() > 0 and window[32, 32] == window.max()


def test_small_images_are_padded_and_cropped_back():
    image = np.zeros((40, 70, 3), np.uint8)
    tiles, boxes = cut_tiles(image, TilingSpec(64, 0.25))
    assert [t.shape for t in tiles] == [(64, 64, 3), (64, 64, 3)] and boxes == [(0, 0), (0, 6)]
    assert stitch([np.ones((16, 16))] * 2, boxes, (40, 70), 64).shape == (40, 70)


def test_shrink_keeps_a_tiny_peak_that_an_area_resize_would_lose():
    amap = np.zeros((2048, 2048), np.float32)
    amap[1001:1007, 777:783] = 5.0
    small = shrink_map(amap, 512)
    assert small.shape == (512, 512) and small.max() == 5.0
    y, x = np.unravel_index(np.argmax(small), small.shape)
    assert abs(y * 4 - 1003) <= 8 and abs(x * 4 - 780) <= 8


def test_predict_tiled_scores_each_image_by_its_stitched_peak_in_batches():
    """A fake scorer whose map is the tile's red channel: the stitched map is the image itself."""
    calls = []

    def scorer(tiles):
        calls.append(len(tiles))
        maps = np.stack([t[..., 0].astype(np.float32) for t in tiles])
        return maps.max(axis=(1, 2)), maps

    images = [np.zeros((300, 500, 3), np.uint8), np.zeros((128, 128, 3), np.uint8)]
    images[0][200:203, 450:453, 0] = 90
    spec = TilingSpec(128, 0.25, map_size=64)
    scores, maps = predict_tiled(images, scorer, spec, batch_size=4)
    assert scores.tolist() == [90.0, 0.0] and maps.shape == (2, 64, 64)
    assert max(calls) <= 4 and sum(calls) == len(tile_boxes(300, 500, spec)) + 1


def test_tiled_images_list_every_tile_of_every_training_image(tmp_path):
    import cv2

    paths = []
    for i, (h, w) in enumerate([(300, 500), (100, 100)]):
        img = np.full((h, w, 3), i * 50, np.uint8)
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), img)
    spec = TilingSpec(128, 0.25)
    tiles = TiledImages(paths, spec)
    assert len(tiles) == count_tiles(300, 500, spec) + 1
    assert all(t.shape == (128, 128, 3) for t in tiles)
    assert tiles[len(tiles) - 1].max() == 50 and tiles[0].max() == 0


# ----------------------------------------------------------------------------- end to end
def _write(path, image):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image[..., ::-1])


def test_train_tile_predict_and_export_agree_torch_vs_onnx(tmp_path, capsys):
    """``train --tile`` stores the setting; predict with the package and with its ONNX export tile
    the same way (one numpy stitching code) and give the same scores. Non-square images, smaller
    than a tile in one direction, exercise the padding."""
    import csv
    import json

    from workbench.cli import main
    from workbench.core.data.synthetic_weave import weave, with_crossed_patch

    data = tmp_path / "data"
    for i in range(6):
        _write(data / "good" / f"{i}.png", weave(300, i)[:, :200 + 20 * i])
    _write(data / "scratch" / "0.png", with_crossed_patch(weave(300, 9), 100, 150)[:100])
    model = tmp_path / "model"
    assert main(["train", "--data", str(data), "--method", "patchcore", "--param", "image_size=64",
                 "--param", "coreset_ratio=0.05", "--tile", "96", "--tile-overlap", "0.3",
                 "--out", str(model), "--device", "cpu", "-q"]) == 0
    assert "tiles of 96 px" in capsys.readouterr().out
    meta = json.loads((model / "model.json").read_text())
    assert meta["tiling"] == {"tile": 96, "overlap": 0.3, "map_size": 512} and meta["training"]["n_tiles"] > 5
    onnx = tmp_path / "onnx"
    assert main(["export", "--model", str(model), "--format", "onnx", "--out", str(onnx)]) == 0
    assert json.loads((onnx / "model.json").read_text())["tiling"] == meta["tiling"]
    scores = {}
    for name, package in (("torch", model), ("onnx", onnx)):
        assert main(["predict", "--model", str(package), str(data), "--out", str(tmp_path / f"p-{name}"),
                     "--device", "cpu", "-q"]) == 0
        with open(tmp_path / f"p-{name}" / "scores.csv", newline="") as fh:
            scores[name] = {r["path"]: float(r["score"]) for r in csv.DictReader(fh)}
    assert scores["torch"].keys() == scores["onnx"].keys() and len(scores["torch"]) == 7
    for path, value in scores["torch"].items():
        assert scores["onnx"][path] == pytest.approx(value, rel=1e-4, abs=1e-4), path


def test_a_damaged_tiling_entry_is_reported_by_name(tmp_path, tiny_images):
    import json

    from workbench.core.formats import ModelPackageError
    from workbench.core.methods import METHODS, create_method
    from workbench.core.methods.package import load_model, save_model

    model = create_method("padim", device="cpu", **METHODS["padim"].tiny_params).fit(tiny_images["train"][:2])
    model.metadata["tiling"] = {"tile": 8}
    save_model(model, tmp_path / "m")
    with pytest.raises(ModelPackageError, match="model.json: tiling: 'tile' must be"):
        load_model(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["tiling"] == {"tile": 8}


@pytest.mark.slow
def test_six_pixel_defect_on_2048_image_found_with_tiling_missed_without():
    """A 6x6 crossed-weave patch (same mean brightness) on a 2048x2048 weave: shrunk to 256 px
    it averages away; with 256-px tiles at full resolution it is the highest point of the map.
    (Under a minute on an idle 2-core machine: 81 tiles to train on, 162 to score.)"""
    from workbench.core.data.synthetic_weave import weave, with_crossed_patch
    from workbench.core.methods import create_method

    size, (dy, dx) = 2048, (1001, 777)
    good, bad = weave(size, 10), with_crossed_patch(weave(size, 12), dy, dx)
    params = dict(image_size=256, coreset_ratio=0.01, projection_dim=32)
    results = {}
    for tiled in (True, False):
        model = create_method("patchcore", device="cpu", **params)
        if tiled:
            model.metadata["tiling"] = TilingSpec(256, 0.125).to_json()
            model.fit(cut_tiles(weave(size, 0), TilingSpec(256, 0.125))[0])
        else:
            model.fit([weave(size, 0)])
        scores, maps = model.predict([good, bad])
        y, x = np.unravel_index(np.argmax(maps[1]), maps[1].shape)
        results[tiled] = (scores, (y * size / maps.shape[1], x * size / maps.shape[2]))
    (scores, (py, px)) = results[True]
    assert scores[1] > 2 * scores[0], scores  # found: far above the good image
    assert abs(py - dy) < 24 and abs(px - dx) < 24, (py, px)  # ... at the defect
    (scores, (py, px)) = results[False]
    assert scores[1] < 1.1 * scores[0], scores  # missed: no higher than a good image
    assert abs(py - dy) > 64 or abs(px - dx) > 64, (py, px)  # and the map's peak is elsewhere
