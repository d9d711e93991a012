"""Deterministic synthetic inspection dataset in MVTec AD layout.

The workbench ships a small sample dataset so that a new user (and the test-suite) can train
and evaluate a model without downloading anything. Real datasets such as MVTec AD cannot be
redistributed, so this module *renders* one: a woven ``fabric`` texture category and a metal
``washer`` object category, each with good images and three defect types with exact
ground-truth masks.

Design choices, and why:

* **Deterministic.** Every image is rendered from its own seed, derived from
  ``(seed, category, split, label, index)`` with CRC32 (never Python's salted ``hash``), so one
  image can be re-rendered in isolation and the committed PNGs can be checked in tests.
  All maths is float64 (numpy and OpenCV), which keeps CPU/SIMD rounding differences far
  below the 8-bit quantisation step.
* **Exact masks.** A defect is rendered as a modified copy of the clean image plus a
  *strength* map (its footprint, 1 at full effect). Pixels with strength below
  :data:`MASK_THRESHOLD` are reset to the clean render, so the mask is exactly the set of
  pixels where the defect was applied - never a guessed ellipse.
* **Realistic enough to be a fair test.** Illumination gradients, pose / phase jitter and
  sensor noise vary per image, while defects stay genuinely visible at the 8-16 px feature
  strides of the default backbone (a few are deliberately subtle).
* **Small.** The set lives in git, so it must stay well under 15 MB (it is about 9 MB):
  256 px images, luminance-only sensor noise (sigma 2 grey levels) and colour stored as a
  smooth offset from luminance (see :func:`to_uint8`), PNG compression level 9.

Run ``python -m workbench.core.data.synthetic --out workbench/sample_data`` to (re)write the set.
"""

from __future__ import annotations

import argparse
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

Array = np.ndarray

IMAGE_SIZE = 256
N_TRAIN_GOOD = 40
N_TEST_GOOD = 15
N_PER_DEFECT = 8
SUBTLE_INDICES = frozenset({2, 6})  # of the 8 images per defect type, these are low-contrast/small
MASK_THRESHOLD = 0.1  # strength (fraction of the defect's full effect) that counts as defect
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 9]
GOOD = "good"


# --------------------------------------------------------------------------- data types


@dataclass
class Scene:
    """One clean render before the camera: ``base`` is RGB in grey levels (0..255) before
    illumination; ``gain`` and ``noise`` (both HxW) are the camera part, kept separate so the
    clean and the defective version of an image get identical light and noise. ``extra``
    holds what a defect renderer needs to know about the geometry."""

    base: Array
    gain: Array
    noise: Array
    extra: dict[str, Array | float]


@dataclass
class Sample:
    """A rendered image (RGB uint8), its clean twin and its mask (None for good images)."""

    image: Array
    clean: Array
    mask: Array | None


DefectFn = Callable[[Scene, np.random.Generator, bool], tuple[Array, Array]]


class Category(Protocol):
    """What a category renderer provides: a clean scene and named defect renderers.

    A defect renderer returns ``(defective_base, strength)``; see :func:`apply_defect`.
    """

    name: str
    defects: dict[str, DefectFn]

    def scene(self, rng: np.random.Generator, size: int) -> Scene: ...


# --------------------------------------------------------------------------- helpers


def _grid(size: int) -> tuple[Array, Array]:
    """Pixel-centre coordinates ``(x, y)`` as float64 arrays."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return x, y


def smooth_noise(rng: np.random.Generator, size: int, cell: float) -> Array:
    """Zero-mean, roughly unit-variance noise with features about ``cell`` pixels wide.

    Upsampling a coarse random grid is cheaper than blurring and gives natural-looking
    low-frequency variation (illumination, waviness, blotches)."""
    n = int(np.ceil(size / cell)) + 3
    coarse = rng.standard_normal((n, n))
    big = cv2.resize(coarse, (int(n * cell), int(n * cell)), interpolation=cv2.INTER_CUBIC)
    off = int(cell)
    return big[off:off + size, off:off + size].copy()


def _blur(img: Array, sx: float, sy: float | None = None) -> Array:
    """Float64 Gaussian blur with reflected borders (deterministic across CPUs)."""
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sx, sigmaY=sy if sy is not None else sx,
                            borderType=cv2.BORDER_REFLECT)


def _px(scene: Scene) -> float:
    """Pixels per nominal pixel: defect sizes are tuned for 256 px and scale with the image."""
    return scene.base.shape[0] / IMAGE_SIZE


def _smoothstep(e0: float, e1: float, x: Array) -> Array:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gather_wrapped(table: Array, i: Array) -> Array:
    """``table[i mod len]`` for integer-valued float arrays (handles negatives)."""
    return table[np.mod(i.astype(np.int64), len(table))]


def _bilinear(img: Array, xs: Array, ys: Array) -> Array:
    """Sample ``img`` (HxW[xC]) at float coordinates with bilinear interpolation and edge
    clamping. Plain numpy float64, so it is exactly reproducible."""
    h, w = img.shape[:2]
    xs, ys = np.clip(xs, 0, w - 1.000001), np.clip(ys, 0, h - 1.000001)
    x0, y0 = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    fx, fy = xs - x0, ys - y0
    if img.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bot = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


def illumination(rng: np.random.Generator, size: int, slope: float, wobble: float) -> Array:
    """Multiplicative light field: overall exposure, a linear gradient in a random direction
    and a little low-frequency unevenness, as with a real ring or bar light."""
    x, y = _grid(size)
    c = (size - 1) / 2.0
    ang = rng.uniform(0, 2 * np.pi)
    grad = ((x - c) * np.cos(ang) + (y - c) * np.sin(ang)) / size
    exposure = rng.uniform(0.96, 1.04)
    return exposure * (1.0 + rng.uniform(0.4, 1.0) * slope * grad
                       + wobble * smooth_noise(rng, size, size / 2.5))


def sensor_noise(rng: np.random.Generator, size: int, sigma: float) -> Array:
    """Luminance read noise of ``sigma`` grey levels, slightly correlated between
    neighbours as after demosaicing. Chroma noise is left out: it is weak in real cameras
    and would double the PNG size (see :func:`to_uint8`)."""
    luma = _blur(rng.standard_normal((size, size)), 0.55)
    return luma * (sigma / luma.std())


def to_uint8(scene: Scene, base: Array) -> Array:
    """Apply the camera (light, noise) to a base render and quantise to RGB uint8.

    The image is split into luminance (channel mean) and a colour offset, quantised
    separately. Where the colour offset is smooth - everywhere except at defects and object
    edges - the three channels then have identical PNG filter residuals, which deflate
    compresses about twice as well as independent ones."""
    lum = base.mean(axis=2)
    chroma = base - lum[..., None]
    out = np.rint(lum * scene.gain + scene.noise)[..., None] + np.rint(chroma * scene.gain[..., None])
    return np.clip(out, 0, 255).astype(np.uint8)


def polyline_stroke(size: int, pts: Array, width: float, taper: float = 0.15) -> Array:
    """Anti-aliased coverage (0..1) of a polyline of ``width`` px whose width tapers
    towards both ends, like a real scratch. Analytic (distance to segments), so exact."""
    x, y = _grid(size)
    best_d = np.full((size, size), np.inf)
    best_s = np.zeros((size, size))
    seg_len = np.hypot(*np.diff(pts, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    for k in range(len(pts) - 1):
        a, b = pts[k], pts[k + 1]
        ab = b - a
        t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / max(ab @ ab, 1e-9), 0, 1)
        d = np.hypot(x - a[0] - t * ab[0], y - a[1] - t * ab[1])
        closer = d < best_d
        best_d = np.where(closer, d, best_d)
        best_s = np.where(closer, (cum[k] + t * seg_len[k]) / cum[-1], best_s)
    ends = np.minimum(best_s, 1.0 - best_s)
    w = width * np.clip(ends / taper, 0.25, 1.0)
    return np.clip(w / 2.0 + 0.5 - best_d, 0.0, 1.0)


def curve_points(rng: np.random.Generator, start: Array, angle: float, length: float,
                 bend: float, n: int = 24) -> Array:
    """Points of a gently curved (quadratic Bezier) path, as scratches usually are."""
    d = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-d[1], d[0]])
    end = start + d * length
    ctrl = (start + end) / 2 + normal * bend * length * rng.uniform(-1, 1)
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * ctrl + t ** 2 * end


def blob_radius(rng: np.random.Generator, phi: Array, radius: float, rough: float) -> Array:
    """Irregular closed outline r(phi): a few low harmonics for the shape plus
    higher ones for a torn / frayed edge."""
    r = np.ones_like(phi)
    for k in range(2, 6):
        r += rng.uniform(0, 0.12) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    for k in range(7, 19, 2):
        r += rough * rng.uniform(0.3, 1.0) / k * 6 * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    return radius * r


# --------------------------------------------------------------------------- fabric


class Fabric:
    """Plain-weave blue canvas: darker warp, lighter weft, round threads with twist, slubs
    and per-thread brightness variation; small orientation and phase jitter per image.
    Rendered as luminance plus one constant dye colour (see :func:`to_uint8`)."""

    name = "fabric"
    warp_lum = 100.0
    weft_lum = 146.0
    dye = np.array([-17.0, -2.0, 19.0])

    def __init__(self) -> None:
        self.defects: dict[str, DefectFn] = {
            "hole": self.hole, "scratch": self.scratch, "stain": self.stain}

    # -- clean texture --------------------------------------------------------------
    def scene(self, rng: np.random.Generator, size: int) -> Scene:
        period = 7.0 * rng.uniform(0.985, 1.015)
        theta = np.deg2rad(rng.uniform(-1.5, 1.5))
        u, v = self._weave_coords(rng, size, period, theta)
        base = self._shade(rng, size, u, v)
        gain = illumination(rng, size, slope=0.16, wobble=0.015)
        noise = sensor_noise(rng, size, 2.0)
        return Scene(base, gain, noise, {"theta": theta, "period": period})

    @staticmethod
    def _weave_coords(rng: np.random.Generator, size: int, period: float,
                      theta: float) -> tuple[Array, Array]:
        """Thread coordinates (1 unit = 1 thread) with rotation, phase and waviness."""
        x, y = _grid(size)
        c = (size - 1) / 2.0
        xr = np.cos(theta) * (x - c) + np.sin(theta) * (y - c)
        yr = -np.sin(theta) * (x - c) + np.cos(theta) * (y - c)
        wx = 0.7 * smooth_noise(rng, size, 40.0)
        wy = 0.7 * smooth_noise(rng, size, 40.0)
        return (xr + wx) / period + rng.uniform(0, 2), (yr + wy) / period + rng.uniform(0, 2)

    def _shade(self, rng: np.random.Generator, size: int, u: Array, v: Array) -> Array:
        j, i = np.floor(u), np.floor(v)
        fx, fy = u - j, v - i
        n_thr = 101
        warp_w = rng.uniform(0.78, 0.95, n_thr)
        weft_w = rng.uniform(0.78, 0.95, n_thr)
        warp_b = 1.0 + 0.05 * rng.standard_normal(n_thr)
        weft_b = 1.0 + 0.04 * rng.standard_normal(n_thr)
        slub = 1.0 + 0.07 * smooth_noise(rng, size, 9.0)
        prof_w = np.sqrt(np.clip(1 - ((fx - 0.5) / (0.5 * _gather_wrapped(warp_w, j) * slub)) ** 2, 0, 1))
        prof_f = np.sqrt(np.clip(1 - ((fy - 0.5) / (0.5 * _gather_wrapped(weft_w, i) * slub)) ** 2, 0, 1))
        h_warp = prof_w * (0.55 + 0.4 * np.sin(np.pi * (v + j)))
        h_weft = prof_f * (0.55 + 0.4 * np.sin(np.pi * (u + i + 1)))
        warp_on_top = h_warp >= h_weft
        height = np.maximum(h_warp, h_weft)
        gy, gx = np.gradient(_blur(height, 0.6))
        relief = 1.0 + 0.9 * (-gx - gy)  # light from the top-left
        ao = 0.45 + 0.55 * height
        twist_w = np.sin(2 * np.pi * (2.0 * fy + 0.9 * fx) + j)
        twist_f = np.sin(2 * np.pi * (2.0 * fx - 0.9 * fy) + i)
        fib_w = _blur(rng.standard_normal((size, size)), 0.5, 3.0)
        fib_f = _blur(rng.standard_normal((size, size)), 3.0, 0.5)
        tex_w = 1 + 0.05 * twist_w + 0.35 * fib_w
        tex_f = 1 + 0.05 * twist_f + 0.35 * fib_f
        lum_w = self.warp_lum * _gather_wrapped(warp_b, j) * tex_w
        lum_f = self.weft_lum * _gather_wrapped(weft_b, i) * tex_f
        lum = np.where(warp_on_top, lum_w, lum_f) * ao * relief
        return lum[..., None] + self.dye

    # -- defects ----------------------------------------------------------------------
    @staticmethod
    def _centre(rng: np.random.Generator, size: int, margin: float) -> Array:
        return rng.uniform(margin, size - margin, 2)

    def scratch(self, s: Scene, rng: np.random.Generator, subtle: bool) -> tuple[Array, Array]:
        """A snagged / abraded line: lighter (fibres pulled up) or darker (dirt line)."""
        size, k = s.base.shape[0], _px(s)
        length = k * (rng.uniform(40, 60) if subtle else rng.uniform(55, 120))
        for _ in range(100):  # redraw until the whole scratch lies inside the image
            start = self._centre(rng, size, 8 * k)
            pts = curve_points(rng, start, rng.uniform(0, 2 * np.pi), length, 0.25)
            if pts.min() >= 8 * k and pts.max() <= size - 1 - 8 * k:
                break
        width = k * (rng.uniform(3.0, 3.5) if subtle else rng.uniform(3.0, 5.0))
        cov = polyline_stroke(size, pts, width)
        bright = rng.random() < 0.6
        amount = 0.6 if subtle else rng.uniform(0.7, 1.0)
        if bright:
            target = s.base * (1 + 0.5 * amount) + 60 * amount
        else:
            target = s.base * (1 - 0.6 * amount)
        return s.base + cov[..., None] * (target - s.base), cov

    def hole(self, s: Scene, rng: np.random.Generator, subtle: bool) -> tuple[Array, Array]:
        """A torn hole: the weave around it is pushed outwards, the dark backing shows
        through with a shadowed rim, and broken thread ends hang into it."""
        size, k = s.base.shape[0], _px(s)
        radius = k * (rng.uniform(3.5, 4.5) if subtle else rng.uniform(5.5, 12.0))
        c = self._centre(rng, size, 24 * k)
        x, y = _grid(size)
        dx, dy = x - c[0], y - c[1]
        rho, phi = np.hypot(dx, dy), np.arctan2(dy, dx)
        edge = blob_radius(rng, phi, radius, 0.12)
        reach = 0.8 * radius + 3.0 * k
        push = 0.45 * radius * np.clip(1 - (rho - edge) / reach, 0, 1) ** 2 * (rho > edge - 1)
        safe = np.maximum(rho, 1e-6)
        out = _bilinear(s.base, x - push * dx / safe, y - push * dy / safe)
        inside = np.clip(edge + 0.5 - rho, 0, 1)
        depth = np.clip((edge - rho) / (3.0 * k), 0, 1)  # fabric thickness shadows the rim
        backing = np.array([34.0, 36.0, 41.0]) * (0.55 + 0.45 * depth)[..., None] * \
            (1 + 0.08 * smooth_noise(rng, size, 3.0))[..., None]
        out = out + inside[..., None] * (backing - out)
        strands = self._strands(rng, size, c, radius, float(s.extra["theta"]))
        thread = (self.weft_lum * (0.9 + 0.15 * _blur(rng.standard_normal((size, size)), 0.7)))[..., None] + self.dye
        out = out + strands[..., None] * (thread - out)
        strength = np.maximum(np.maximum(inside, strands), push / (0.45 * radius) * 0.5)
        return out, strength

    @staticmethod
    def _strands(rng: np.random.Generator, size: int, c: Array, radius: float,
                 theta: float) -> Array:
        """Broken thread ends hanging into the hole, along warp or weft direction."""
        cov = np.zeros((size, size))
        for _ in range(int(rng.integers(4, 9))):
            side = rng.integers(4)
            ang = theta + side * np.pi / 2 + rng.uniform(-0.3, 0.3)
            lateral = np.array([-np.sin(ang), np.cos(ang)]) * rng.uniform(-0.6, 0.6) * radius
            start = c - np.array([np.cos(ang), np.sin(ang)]) * radius * 1.1 + lateral
            pts = curve_points(rng, start, ang, radius * rng.uniform(0.5, 1.0), 0.35, 8)
            cov = np.maximum(cov, polyline_stroke(size, pts, rng.uniform(1.2, 1.8), 0.3))
        return cov

    def stain(self, s: Scene, rng: np.random.Generator, subtle: bool) -> tuple[Array, Array]:
        """Soft-edged contamination (coffee, oil, rust) that tints but keeps the weave."""
        size, k = s.base.shape[0], _px(s)
        radius = k * (rng.uniform(10, 12) if subtle else rng.uniform(12, 26))
        c = self._centre(rng, size, radius + 10 * k)
        x, y = _grid(size)
        field = np.zeros((size, size))
        for _ in range(int(rng.integers(3, 6))):
            ck = c + rng.normal(0, radius * 0.35, 2)
            sk = radius * rng.uniform(0.45, 0.7)
            field += rng.uniform(0.6, 1.0) * np.exp(-((x - ck[0]) ** 2 + (y - ck[1]) ** 2) / (2 * sk * sk))
        field *= 1 + 0.3 * smooth_noise(rng, size, 5.0 * k)
        field /= field.max()
        core = _smoothstep(0.1, 0.45, field)
        ring = np.exp(-((field - 0.2) / 0.07) ** 2) * (field > 0.1)  # coffee-ring rim
        alpha = np.clip(core + 0.35 * ring, 0, 1)
        tint = [np.array([0.80, 0.66, 0.48]), np.array([0.55, 0.55, 0.52]),
                np.array([0.92, 0.64, 0.42])][int(rng.integers(3))]
        peak = 0.75 if subtle else rng.uniform(0.8, 1.0)
        out = s.base + (peak * alpha)[..., None] * (s.base * tint - s.base)
        return out, alpha


# --------------------------------------------------------------------------- washer


class Washer:
    """A zinc-plated flat washer on a matt conveyor belt, lit from the top-left: lathe
    grooves and circular brushing with the anisotropic 'bow-tie' sheen, bevelled edges,
    a soft drop shadow; a few px translation, any rotation and +-3 % scale per image."""

    name = "washer"
    metal_lum, metal_tint = 200.0, np.array([-2.0, -0.5, 2.5])
    belt_lum, belt_tint = 66.0, np.array([-4.0, 0.0, 4.0])
    light = np.array([-1.0, -1.0, 1.3]) / np.linalg.norm([-1.0, -1.0, 1.3])

    def __init__(self) -> None:
        self.defects: dict[str, DefectFn] = {
            "dent": self.dent, "missing_part": self.missing_part, "scratch": self.scratch}

    # -- clean object ------------------------------------------------------------------
    def scene(self, rng: np.random.Generator, size: int) -> Scene:
        k = size / 256.0
        cx, cy = size / 2 + rng.uniform(-4, 4, 2) * k
        scale = rng.uniform(0.97, 1.03) * k
        r_out, r_in = 84.0 * scale, 36.0 * scale
        rot = rng.uniform(0, 2 * np.pi)
        x, y = _grid(size)
        rho, phi = np.hypot(x - cx, y - cy), np.arctan2(y - cy, x - cx)
        cover = self._ring(rho, r_out, r_in)
        metal = self._metal(rng, rho, phi, rot, r_out, r_in, scale)
        belt = self._belt(rng, size, x, y, cx, cy, r_out, r_in)
        lum = belt * (1 - cover) + metal * cover
        tint = self.belt_tint * (1 - cover[..., None]) + self.metal_tint * cover[..., None]
        base = lum[..., None] + tint
        gain = illumination(rng, size, slope=0.12, wobble=0.015)
        noise = sensor_noise(rng, size, 2.0)
        extra = {"cx": cx, "cy": cy, "r_out": r_out, "r_in": r_in, "scale": scale,
                 "cover": cover, "belt": belt[..., None] + self.belt_tint}
        return Scene(base, gain, noise, extra)

    @staticmethod
    def _ring(rho: Array, r_out: float, r_in: float) -> Array:
        """Anti-aliased coverage of the annulus."""
        return np.clip(r_out + 0.5 - rho, 0, 1) * np.clip(rho - r_in + 0.5, 0, 1)

    def _belt(self, rng: np.random.Generator, size: int, x: Array, y: Array, cx: float,
              cy: float, r_out: float, r_in: float) -> Array:
        """Luminance of the matt rubber belt: fine grain, faint blotches and the washer's
        soft shadow."""
        grain = 0.035 * _blur(rng.standard_normal((size, size)), 0.8)
        blotch = 0.03 * smooth_noise(rng, size, 24.0)
        sx, sy = cx + 4.0, cy + 5.0
        shadow = _blur(self._ring(np.hypot(x - sx, y - sy), r_out + 1, r_in - 1), 4.0)
        return self.belt_lum * (1 + grain + blotch) * (1 - 0.5 * shadow)

    def _metal(self, rng: np.random.Generator, rho: Array, phi: Array, rot: float,
               r_out: float, r_in: float, scale: float) -> Array:
        """Luminance of the washer surface (flat face, bevels, brushing and highlights)."""
        bevel_o, bevel_i = 4.0 * scale, 3.0 * scale
        t_o = _smoothstep(r_out - bevel_o - 0.8, r_out - bevel_o + 0.8, rho)
        t_i = 1 - _smoothstep(r_in + bevel_i - 0.8, r_in + bevel_i + 0.8, rho)
        tilt = np.sin(np.deg2rad(45))
        n_o = self._lambert(np.cos(phi) * tilt, np.sin(phi) * tilt)
        n_i = self._lambert(-np.cos(phi) * tilt, -np.sin(phi) * tilt)
        flat = self._lambert(np.zeros_like(phi), np.zeros_like(phi))
        diffuse = flat * (1 - t_o - t_i) + n_o * t_o + n_i * t_i
        face = 1 - np.clip(t_o + t_i, 0, 1)
        theta_light = np.arctan2(self.light[1], self.light[0])
        sheen = np.abs(np.cos(phi - theta_light)) ** 6 * _smoothstep(r_in, r_out, rho + 20 * scale)
        brush = self._brushing(rng, rho / scale, phi - rot)
        spec = np.exp(-((rho - 0.62 * r_out) ** 2) / (2 * (9 * scale) ** 2)) * \
            np.exp(-((phi - theta_light + np.pi) % (2 * np.pi) - np.pi) ** 2 / (2 * 0.35 ** 2))
        lum = 0.55 * diffuse + face * (0.22 * sheen * (1 + 2.5 * brush) + 0.08 * brush + 0.25 * spec)
        return self.metal_lum * lum

    def _lambert(self, nx: Array, ny: Array) -> Array:
        nz = np.sqrt(np.clip(1 - nx * nx - ny * ny, 0, 1))
        return np.clip(nx * self.light[0] + ny * self.light[1] + nz * self.light[2], 0, 1) / self.light[2]

    @staticmethod
    def _brushing(rng: np.random.Generator, rho: Array, phi: Array) -> Array:
        """Circular lathe / brushing marks: fast variation across the radius, slow along the
        circumference. Sampled from a polar noise table so that rotation just shifts it."""
        n_r, n_p = 240, 720
        table = rng.standard_normal((n_r, n_p))
        pad = 32  # wrap around the circumference so the seam at phi = 0 is invisible
        table = np.pad(table, ((0, 0), (pad, pad)), mode="wrap")
        table = _blur(table, 8.0, 0.7)[:, pad:-pad]
        table /= table.std()
        grooves = 0.6 * np.sin(2 * np.pi * np.arange(n_r) / 5.3 + rng.uniform(0, 6))
        table += grooves[:, None]
        ri = np.clip(rho * 2.0, 0, n_r - 1.001)
        pi = np.mod(phi, 2 * np.pi) / (2 * np.pi) * n_p
        r0, p0 = np.floor(ri).astype(np.int64), np.floor(pi).astype(np.int64)
        fr, fp = ri - r0, pi - p0
        p0 %= n_p
        p1 = (p0 + 1) % n_p
        top = table[r0, p0] * (1 - fp) + table[r0, p1] * fp
        bot = table[r0 + 1, p0] * (1 - fp) + table[r0 + 1, p1] * fp
        return 0.12 * (top * (1 - fr) + bot * fr)

    # -- defects ----------------------------------------------------------------------
    def _face_point(self, s: Scene, rng: np.random.Generator, pad: float) -> Array:
        """A random point on the flat face of the washer at least ``pad`` px from its edges."""
        e = s.extra
        r = rng.uniform(float(e["r_in"]) + pad, float(e["r_out"]) - pad)
        a = rng.uniform(0, 2 * np.pi)
        return np.array([float(e["cx"]) + r * np.cos(a), float(e["cy"]) + r * np.sin(a)])

    def scratch(self, s: Scene, rng: np.random.Generator, subtle: bool) -> tuple[Array, Array]:
        """A thin scratch through the plating: bright fresh metal or a dark groove."""
        size, k = s.base.shape[0], _px(s)
        cover = s.extra["cover"]
        length = k * (rng.uniform(30, 40) if subtle else rng.uniform(40, 75))
        width = k * (rng.uniform(2.0, 2.4) if subtle else rng.uniform(2.5, 3.5))
        for _ in range(50):  # keep most of the scratch on the metal
            pts = curve_points(rng, self._face_point(s, rng, 8 * k), rng.uniform(0, 2 * np.pi), length, 0.2)
            stroke = polyline_stroke(size, pts, width)
            cov = stroke * cover
            if cov.sum() > 0.85 * stroke.sum():
                break
        amount = 0.45 if subtle else rng.uniform(0.8, 1.0)
        if rng.random() < 0.5:
            target = s.base * (1 + 0.3 * amount) + 45 * amount
        else:
            target = s.base * (1 - 0.6 * amount)
        return s.base + cov[..., None] * (target - s.base), cov

    def dent(self, s: Scene, rng: np.random.Generator, subtle: bool) -> tuple[Array, Array]:
        """An impact crater: shading from the deformed surface normal (the wall facing the
        light brightens, the other darkens) and a darker, sheen-less centre."""
        size = s.base.shape[0]
        radius = _px(s) * (rng.uniform(5.5, 6.5) if subtle else rng.uniform(7.5, 15.0))
        depth = 0.4 if subtle else rng.uniform(0.65, 1.05)  # max slope of the crater wall
        c = self._face_point(s, rng, radius * 0.6)
        x, y = _grid(size)
        dx, dy = x - c[0], y - c[1]
        q = (dx * dx + dy * dy) / (radius * radius)
        inside = q < 1
        w = np.where(inside, 1 - q, 0.0)
        slope = depth * 2.6 / radius  # max of |grad (1-q)^2| is 1 / (2.6 / radius)
        hx, hy = slope * w * dx, slope * w * dy  # gradient of the crater -D(1-q)^2
        norm = np.sqrt(hx * hx + hy * hy + 1)
        lam = (-hx * self.light[0] - hy * self.light[1] + self.light[2]) / norm / self.light[2]
        gain = lam * (1 - 0.35 * depth * w * w)
        strength = inside * np.asarray(s.extra["cover"])
        out = s.base + strength[..., None] * (s.base * gain[..., None] - s.base)
        return out, strength

    def missing_part(self, s: Scene, rng: np.random.Generator, subtle: bool) -> tuple[Array, Array]:
        """A chunk broken out of the outer (or inner) edge: the belt shows through. The
        strength is the removed object coverage, so the mask is exactly 'was metal, now not'."""
        size = s.base.shape[0]
        e = s.extra
        outer = rng.random() < 0.75
        edge_r = float(e["r_out"]) if outer else float(e["r_in"])
        radius = _px(s) * (rng.uniform(7.5, 8.5) if subtle else rng.uniform(10.0, 20.0))
        a = rng.uniform(0, 2 * np.pi)
        depth = radius * rng.uniform(0.1, 0.3)  # how far the chunk's centre lies inside the metal
        centre_r = edge_r - depth if outer else edge_r + depth
        c = np.array([float(e["cx"]), float(e["cy"])]) + centre_r * np.array([np.cos(a), np.sin(a)])
        x, y = _grid(size)
        dx, dy = x - c[0], y - c[1]
        chunk = np.clip(blob_radius(rng, np.arctan2(dy, dx), radius, 0.05) + 0.5 - np.hypot(dx, dy), 0, 1)
        removed = chunk * np.asarray(e["cover"])
        belt = np.asarray(e["belt"])
        out = s.base + chunk[..., None] * (belt - s.base)
        return out, removed


CATEGORIES: dict[str, Callable[[], Category]] = {"fabric": Fabric, "washer": Washer}


# --------------------------------------------------------------------------- rendering


def image_seed(seed: int, category: str, split: str, label: str, index: int) -> np.random.Generator:
    """Independent, reproducible random stream per image (CRC32: stable across runs)."""
    key = zlib.crc32(f"{category}/{split}/{label}".encode())
    return np.random.default_rng(np.random.SeedSequence([seed, key, index]))


def apply_defect(clean: Array, defective: Array, strength: Array) -> tuple[Array, Array]:
    """Keep the defect only where its strength reaches :data:`MASK_THRESHOLD`; everywhere
    else the pixel is *exactly* the clean one, so the mask is exact by construction."""
    mask = strength >= MASK_THRESHOLD
    return np.where(mask[..., None], defective, clean), mask.astype(np.uint8) * 255


def render(category: str, split: str, label: str, index: int, seed: int = 0,
           image_size: int = IMAGE_SIZE) -> Sample:
    """Render one image of the dataset, with its clean twin and mask."""
    cat = CATEGORIES[category]()
    rng = image_seed(seed, category, split, label, index)
    scene = cat.scene(rng, image_size)
    clean = to_uint8(scene, scene.base)
    if label == GOOD:
        return Sample(clean, clean, None)
    defective, strength = cat.defects[label](scene, rng, index in SUBTLE_INDICES)
    base, mask = apply_defect(scene.base, defective, strength)
    return Sample(to_uint8(scene, base), clean, mask)


def plan(category: str) -> list[tuple[str, str, int]]:
    """Every ``(split, label, count)`` of a category, in MVTec AD layout."""
    defects = sorted(CATEGORIES[category]().defects)
    return [("train", GOOD, N_TRAIN_GOOD), ("test", GOOD, N_TEST_GOOD)] + \
        [("test", d, N_PER_DEFECT) for d in defects]


def _write_png(path: Path, img: Array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), data, PNG_PARAMS):
        raise OSError(f"could not write {path}")


def generate(out_dir: Path, categories: list[str] | None = None, seed: int = 0,
             image_size: int = IMAGE_SIZE) -> None:
    """Write the dataset for ``categories`` (default: all) under ``out_dir`` in MVTec AD
    layout: ``CAT/train/good``, ``CAT/test/{good,DEFECT}``, ``CAT/ground_truth/DEFECT``."""
    out_dir = Path(out_dir)
    for category in categories or list(CATEGORIES):
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; choose from {sorted(CATEGORIES)}")
        for split, label, count in plan(category):
            for i in range(count):
                sample = render(category, split, label, i, seed, image_size)
                _write_png(out_dir / category / split / label / f"{i:03d}.png", sample.image)
                if sample.mask is not None:
                    _write_png(out_dir / category / "ground_truth" / label / f"{i:03d}_mask.png",
                               sample.mask)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("workbench/sample_data"), help="output folder")
    parser.add_argument("--categories", nargs="*", choices=sorted(CATEGORIES), default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=IMAGE_SIZE)
    args = parser.parse_args(argv)
    generate(args.out, args.categories, args.seed, args.size)


if __name__ == "__main__":
    main()
