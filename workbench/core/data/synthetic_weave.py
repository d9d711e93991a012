"""A large, finely woven synthetic texture with a tiny defect: the tiling test case.

Why this pattern: the weave is stripes two pixels wide (period 4). A model that shrinks a
2048-pixel image to 256 pixels averages every 8x8 block, so the stripes (and a 6-pixel patch
where they run the other way, which has the same mean brightness) vanish into a flat grey:
the defect is invisible without tiling, by construction, not by luck. Tiles at the image's
own resolution keep the stripes, and the crossed patch stands out. Deterministic per seed.
"""

from __future__ import annotations

import numpy as np

HIGH, LOW = 150.0, 100.0


def weave(size: int, seed: int) -> np.ndarray:
    """A ``size`` x ``size`` RGB uint8 image: vertical stripes (2 px on, 2 px off) with a random
    phase, a slow illumination wave and sensor noise (sigma 4 grey levels)."""
    rng = np.random.default_rng(seed)
    x = np.arange(size)
    stripes = np.where(((x + int(rng.integers(0, 4))) // 2) % 2 == 0, HIGH, LOW)
    img = np.tile(stripes, (size, 1))
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = img + 10 * np.sin(2 * np.pi * (yy * rng.uniform(0.5, 1.5) + xx * rng.uniform(0.5, 1.5)))
    img = img + rng.normal(0, 4, img.shape)
    return _rgb(img)


def with_crossed_patch(image: np.ndarray, y: int, x: int, side: int = 6) -> np.ndarray:
    """``image`` with a ``side`` x ``side`` patch at (y, x) where the stripes run horizontally,
    at the patch's own mean brightness (the defect adds no light and removes none)."""
    out = image.astype(np.float64)
    patch = out[y:y + side, x:x + side, 0]
    rows = np.where((np.arange(side)[:, None] // 2) % 2 == 0, HIGH, LOW) * np.ones((1, side))
    out[y:y + side, x:x + side, :] = (rows - rows.mean() + patch.mean())[..., None]
    return _rgb(out[..., 0])


def _rgb(gray: np.ndarray) -> np.ndarray:
    g = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


__all__ = ["weave", "with_crossed_patch"]
