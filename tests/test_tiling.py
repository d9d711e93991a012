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
