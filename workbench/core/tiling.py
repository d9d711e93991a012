"""Tiling for high-resolution images: cut, score tile by tile, stitch with blending.

Why: a model sees ``image_size`` x ``image_size`` pixels (256 by default). A 4000x3000 image
shrunk to that loses every defect smaller than about 15 pixels (field notes: "can it find a
6-pixel defect on a 4000x3000 image"). With tiling the image is cut into overlapping tiles of
``tile`` pixels at its own resolution, each tile is fed to the model (resized to the model's
input size only when ``tile`` differs from it), the tile maps are stitched back with a 2D
Hann window (tile borders, where convolution padding makes features least reliable, count
least; overlaps blend without seams), and the image score is the maximum of the stitched map.

This module is numpy + OpenCV only: the torch models (:meth:`AnomalyModel.predict`) and the
torch-free ONNX runtime (:mod:`workbench.core.export.runtime`) both call
:func:`predict_tiled` with their own "score a batch of tiles" function, so the geometry,
blending and image score are the same code on both paths. The setting travels in the model
package (``model.json`` key ``tiling``) and so in the exported package too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter

#: Side of the stitched map a tiled model returns (maps are square, resized to each image's
#: own size by whoever draws or measures them). Peaks survive the shrink (see shrink_map).
DEFAULT_MAP_SIZE = 512
MAX_OVERLAP = 0.9

TileScorer = Callable[[list[np.ndarray]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class TilingSpec:
    """``tile``: side of a tile in pixels of the original image; ``overlap``: share of a tile
    shared with its neighbour (0 <= overlap <= 0.9); ``map_size``: side of the returned map."""

    tile: int
    overlap: float = 0.25
    map_size: int = DEFAULT_MAP_SIZE

    def __post_init__(self) -> None:
        if isinstance(self.tile, bool) or not isinstance(self.tile, int) or self.tile < 16:
            raise ValueError(f"tiling: 'tile' must be a whole number of pixels >= 16, not {self.tile!r}.")
        if (isinstance(self.overlap, bool) or not isinstance(self.overlap, (int, float))
                or not math.isfinite(self.overlap) or not 0.0 <= self.overlap <= MAX_OVERLAP):
            raise ValueError(f"tiling: 'overlap' must be a share between 0 and {MAX_OVERLAP} "
                             f"(e.g. 0.25), not {self.overlap!r}.")
        if isinstance(self.map_size, bool) or not isinstance(self.map_size, int) or self.map_size < 16:
            raise ValueError(f"tiling: 'map_size' must be a whole number >= 16, not {self.map_size!r}.")

    def to_json(self) -> dict[str, Any]:
        return {"tile": self.tile, "overlap": float(self.overlap), "map_size": self.map_size}

    @classmethod
    def from_json(cls, data: Any) -> "TilingSpec":
        if not isinstance(data, dict) or "tile" not in data:
            raise ValueError(f"tiling must be an object like {{'tile': 256, 'overlap': 0.25}}, not {data!r}.")
        unknown = set(data) - {"tile", "overlap", "map_size"}
        if unknown:
            raise ValueError(f"tiling: unknown key(s) {sorted(unknown)}; expected 'tile', 'overlap', 'map_size'.")
        return cls(data["tile"], data.get("overlap", 0.25), data.get("map_size", DEFAULT_MAP_SIZE))

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> "TilingSpec | None":
        """The spec stored in a package's metadata (``model.json`` key ``tiling``), or None."""
        data = metadata.get("tiling")
        return None if data is None else cls.from_json(data)


def tile_origins(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles covering ``[0, length)``: evenly spaced, the first at 0 and the
    last flush with the end, so the actual overlap is at least ``overlap`` and no tile hangs
    over the edge (a length below ``tile`` gives one tile; the image is padded for it)."""
    if length <= tile:
        return [0]
    stride = max(1, int(round(tile * (1.0 - overlap))))
    n = math.ceil((length - tile) / stride) + 1
    return sorted(set(np.linspace(0, length - tile, n).round().astype(int).tolist()))


def tile_boxes(height: int, width: int, spec: TilingSpec) -> list[tuple[int, int]]:
    """(y, x) origins of every tile of a ``height`` x ``width`` image, row by row."""
    return [(y, x) for y in tile_origins(height, spec.tile, spec.overlap)
            for x in tile_origins(width, spec.tile, spec.overlap)]


def count_tiles(height: int, width: int, spec: TilingSpec) -> int:
    return len(tile_boxes(height, width, spec))


def _pad_to_tile(image: np.ndarray, tile: int) -> np.ndarray:
    """Images smaller than a tile are padded by mirroring (no black border for the model to flag)."""
    h, w = image.shape[:2]
    if h >= tile and w >= tile:
        return image
    pad_h, pad_w = max(0, tile - h), max(0, tile - w)
    mode = cv2.BORDER_REFLECT_101 if h > 1 and w > 1 else cv2.BORDER_REPLICATE
    if pad_h >= h or pad_w >= w:
        mode = cv2.BORDER_REPLICATE  # reflection needs the image to be larger than the padding
    return cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, mode)


def cut_tiles(image: np.ndarray, spec: TilingSpec) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """The tiles of ``image`` (views, ``tile`` x ``tile``) and their (y, x) origins."""
    padded = _pad_to_tile(image, spec.tile)
    boxes = tile_boxes(padded.shape[0], padded.shape[1], spec)
    t = spec.tile
    return [padded[y:y + t, x:x + t] for y, x in boxes], boxes


def blend_window(size: int) -> np.ndarray:
    """2D Hann window, strictly positive (a pixel covered by one tile still gets its value)."""
    w = np.hanning(size + 2)[1:-1]
    return np.outer(w, w).astype(np.float64)


def stitch(tile_maps: Sequence[np.ndarray], boxes: Sequence[tuple[int, int]], shape: tuple[int, int],
           tile: int) -> np.ndarray:
    """Blend ``tile_maps`` (each any square size, brought to ``tile``) placed at ``boxes`` into a
    map of ``shape`` (the original image's height and width) with the Hann window as weight."""
    h, w = shape
    full_h, full_w = max(h, tile), max(w, tile)
    acc = np.zeros((full_h, full_w), np.float64)
    weight = np.zeros((full_h, full_w), np.float64)
    window = blend_window(tile)
    for amap, (y, x) in zip(tile_maps, boxes):
        amap = np.asarray(amap, np.float32)
        if amap.shape != (tile, tile):
            amap = cv2.resize(amap, (tile, tile), interpolation=cv2.INTER_LINEAR)
        acc[y:y + tile, x:x + tile] += amap * window
        weight[y:y + tile, x:x + tile] += window
    return (acc / np.maximum(weight, 1e-12))[:h, :w].astype(np.float32)


def shrink_map(amap: np.ndarray, size: int) -> np.ndarray:
    """``amap`` as a ``size`` x ``size`` map that keeps its peaks: each output pixel takes the
    maximum of the input block it covers (a plain area resize would average a 6-pixel defect
    on a 2048-pixel image away)."""
    h, w = amap.shape
    kh, kw = max(1, math.ceil(h / size)), max(1, math.ceil(w / size))
    if kh > 1 or kw > 1:
        amap = cv2.dilate(amap, np.ones((kh, kw), np.uint8))
    return cv2.resize(amap, (size, size), interpolation=cv2.INTER_NEAREST if (kh > 1 or kw > 1)
                      else cv2.INTER_LINEAR)


def predict_tiled(images: Sequence[np.ndarray], score_tiles: TileScorer, spec: TilingSpec, batch_size: int,
                  progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Score ``images`` tile by tile with ``score_tiles`` (a batch of RGB uint8 tiles ->
    ``(scores[B], maps[B, S, S])``), ``batch_size`` tiles at a time.

    Returns ``(scores[N], maps[N, map_size, map_size])``: the score of an image is the maximum
    of its stitched full-resolution map, the map is that map shrunk with its peaks kept.
    """
    report = make_reporter(progress, "predict (tiled)", len(images))
    scores = np.empty(len(images), np.float32)
    maps = np.empty((len(images), spec.map_size, spec.map_size), np.float32)
    for i in range(len(images)):
        image = images[i]
        tiles, boxes = cut_tiles(image, spec)
        tile_maps: list[np.ndarray] = []
        for start in range(0, len(tiles), max(1, batch_size)):
            if cancel is not None:
                cancel.raise_if_cancelled()
            _, batch_maps = score_tiles(tiles[start:start + batch_size])
            tile_maps.extend(np.asarray(batch_maps, np.float32))
        full = stitch(tile_maps, boxes, image.shape[:2], spec.tile)
        scores[i] = float(full.max()) if np.isfinite(full).all() else np.nan
        maps[i] = shrink_map(full, spec.map_size)
        report(i + 1)
    return scores, maps


class TiledImages(Sequence[np.ndarray]):
    """The training view of images under tiling: every tile of every image, as one sequence.

    Images are read when one of their tiles is first asked for and the last one is kept, so
    a method reading tiles in order (every method's batching does) reads each file once.
    """

    def __init__(self, paths: Sequence[str | Path], spec: TilingSpec,
                 read: Callable[[Path], np.ndarray] | None = None) -> None:
        from workbench.core.data.io import image_dimensions, read_image

        self.spec = spec
        self.paths = [Path(p) for p in paths]
        self._read = read or read_image
        self._index: list[tuple[int, int]] = []  # (image number, tile number)
        for n, path in enumerate(self.paths):
            dims = image_dimensions(path)
            if dims is None:  # the header gave no size: decode once to count the tiles
                dims = self._read(path).shape[:2]
            h, w = max(dims[0], spec.tile), max(dims[1], spec.tile)
            self._index.extend((n, k) for k in range(count_tiles(h, w, spec)))
        self._cached: tuple[int, list[np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n, k = self._index[index]
        if self._cached is None or self._cached[0] != n:
            tiles, _ = cut_tiles(self._read(self.paths[n]), self.spec)
            self._cached = (n, [np.ascontiguousarray(t) for t in tiles])
        tiles = self._cached[1]
        if k >= len(tiles):
            raise ValueError(f"{self.paths[n]} changed size while training read it; start training again.")
        return tiles[k]

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]


__all__ = ["DEFAULT_MAP_SIZE", "TiledImages", "TilingSpec", "blend_window", "count_tiles", "cut_tiles",
           "predict_tiled", "shrink_map", "stitch", "tile_boxes", "tile_origins"]
