"""Hard development benchmark made from real photographs, in MVTec AD layout.

The shipped sample data is rendered and easy (every method scores image AUROC 1.000 on it),
so it cannot tell a good default from a weak one. This script builds a harder set from real
photographs that ship inside the Debian package ``mate-backgrounds`` (GPL-2+, see
``README.md`` beside this file), with defects painted on them:

* three **textures** - ``leaf`` (backlit leaf veins, ``Blinds.jpg``), ``meadow`` (grass
  blades, ``GreenMeadow.jpg``) and ``wood`` (weathered planks, ``Wood.jpg``): training images
  are random crops (position, small rotation and scale, exposure) from one part of the photo,
  test images from a disjoint part, so a test image is never a crop the model has seen;
* two **objects** - ``marigold`` (a flower head, ``Garden.jpg``) and ``ladybird`` (a beetle
  on a stem, ``LadyBird.jpg``): the same object in every image with pose jitter (shift,
  rotation, scale) and exposure changes, as parts on a conveyor.

Each test category has five defect types painted on a clean image: ``scratch`` (thin curved
line, light or dark), ``spot`` (small irregular stain), ``cut`` (a short dark gap with a lit
edge), ``colour`` (a patch of changed hue) and ``missing`` (material torn out, dark backing
showing through). Sizes and contrasts vary per image and two of every eight are deliberately
subtle. The mask is exact by construction: a defect is a modified copy of the clean image and
a strength map, and every pixel whose strength is below ``MASK_THRESHOLD`` is reset to the
clean pixel, so image and clean twin differ only inside the mask (the test checks this).

Deterministic: each image has its own random stream derived (CRC32, never Python's salted
``hash``) from ``(seed, category, split, label, index)``.

    python benchmarks/hard_data/make_hard_benchmark.py [--out benchmarks/hard_data/generated]
        [--categories leaf,wood] [--seed 0] [--image-size 256] [--train 60] [--test-good 20]
        [--per-defect 8] [--source-dir /usr/share/backgrounds/mate/nature]
"""

from __future__ import annotations

import argparse
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

Array = np.ndarray

SOURCE_PACKAGE = "mate-backgrounds"
DEFAULT_SOURCE_DIR = Path("/usr/share/backgrounds/mate/nature")
SOURCE_ENV = "WORKBENCH_HARD_SOURCE_DIR"
DEFAULT_OUT = Path(__file__).resolve().parent / "generated"
IMAGE_SIZE = 256
N_TRAIN = 60
N_TEST_GOOD = 20
N_PER_DEFECT = 8
SUBTLE_INDICES = frozenset({1, 5})  # of every 8 defect images, these are small / low-contrast
MASK_THRESHOLD = 0.1
GOOD = "good"
DEFECTS = ("colour", "cut", "missing", "scratch", "spot")
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]


class SourceMissing(FileNotFoundError):
    """The source photographs are not installed (the Debian package is missing)."""


@dataclass(frozen=True)
class CategorySpec:
    """Where a category's images come from in its photograph.

    Textures: ``crop`` source pixels map onto the output image; training crops are centred
    left of ``split`` (a fraction of the width), test crops right of it. Objects: ``centre``
    and ``crop`` frame the object; ``defect_radius`` (fraction of the output size) is how far
    from the image centre a defect may lie, so defects land on the object."""

    file: str
    kind: str  # "texture" or "object"
    crop: float
    split: float = 0.6
    centre: tuple[float, float] = (0.0, 0.0)
    defect_radius: float = 0.35


CATEGORIES: dict[str, CategorySpec] = {
    "leaf": CategorySpec("Blinds.jpg", "texture", crop=420),
    "meadow": CategorySpec("GreenMeadow.jpg", "texture", crop=300, split=0.58),
    "wood": CategorySpec("Wood.jpg", "texture", crop=520),
    "marigold": CategorySpec("Garden.jpg", "object", crop=1150, centre=(1800, 920), defect_radius=0.22),
    "ladybird": CategorySpec("LadyBird.jpg", "object", crop=560, centre=(1800, 820), defect_radius=0.13),
}


# --------------------------------------------------------------------------- sources


def source_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the photographs: ``override``, else ``$WORKBENCH_HARD_SOURCE_DIR``,
    else where the Debian package installs them."""
    return Path(override or os.environ.get(SOURCE_ENV) or DEFAULT_SOURCE_DIR)


def missing_sources(folder: Path, categories: list[str]) -> list[Path]:
    """Source photographs of ``categories`` that are not in ``folder``."""
    return [folder / CATEGORIES[c].file for c in categories if not (folder / CATEGORIES[c].file).is_file()]


def load_photo(folder: Path, category: str) -> Array:
    """The category's photograph as float64 RGB (0..255)."""
    path = folder / CATEGORIES[category].file
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SourceMissing(f"{path}: source photograph missing or unreadable; install it with "
                            f"'apt-get install {SOURCE_PACKAGE}' or pass --source-dir")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float64)


# --------------------------------------------------------------------------- good images


def image_rng(seed: int, category: str, split: str, label: str, index: int) -> np.random.Generator:
    """Independent, reproducible random stream per image."""
    key = zlib.crc32(f"{category}/{split}/{label}".encode())
    return np.random.default_rng(np.random.SeedSequence([seed, key, index]))


def _warp(photo: Array, centre: Array, crop: float, angle: float, size: int) -> Array:
    """Sample a ``crop``-pixel square of ``photo`` centred at ``centre``, rotated by
    ``angle`` radians, onto a ``size`` x ``size`` image. The photo is first box-filtered to
    about the output scale so the bilinear warp does not alias."""
    scale = crop / size
    if scale > 1.5:  # pre-shrink so that warpAffine only interpolates, never decimates
        f = int(scale)
        photo = cv2.resize(photo, (photo.shape[1] // f, photo.shape[0] // f), interpolation=cv2.INTER_AREA)
        centre, crop, scale = centre / f, crop / f, crop / f / size
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    half = (size - 1) / 2.0
    # output (u, v) -> source: centre + R(angle) * scale * ((u, v) - half)
    m = np.array([[c, -s, centre[0] - c * half + s * half],
                  [s, c, centre[1] - s * half - c * half]])
    return cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def clean_image(photo: Array, spec: CategorySpec, split: str, rng: np.random.Generator, size: int) -> Array:
    """One good image (float64 RGB) before sensor noise: a jittered crop plus exposure."""
    h, w = photo.shape[:2]
    if spec.kind == "texture":
        crop = spec.crop * rng.uniform(0.92, 1.08)
        angle = np.deg2rad(rng.uniform(-4, 4))
        reach = crop * 0.75  # half-diagonal of the rotated crop: it stays inside its region
        lo_x, hi_x = (reach, spec.split * w - reach) if split == "train" else (spec.split * w + reach, w - reach)
        if hi_x <= lo_x or h - 2 * reach <= 0:
            raise ValueError(f"crop {crop:.0f} px does not fit the {split} region of {spec.file}")
        centre = np.array([rng.uniform(lo_x, hi_x), rng.uniform(reach, h - reach)])
    else:
        crop = spec.crop * rng.uniform(0.96, 1.04)
        angle = np.deg2rad(rng.uniform(-6, 6))
        centre = np.array(spec.centre) + rng.uniform(-0.03, 0.03, 2) * spec.crop
    img = _warp(photo, centre, crop, angle, size)
    gain = rng.uniform(0.92, 1.08) * (1 + rng.uniform(-0.03, 0.03, 3))  # exposure + white balance
    return img * gain + rng.uniform(-5, 5)


def sensor_noise(rng: np.random.Generator, size: int) -> Array:
    """Luminance noise of about 1.5 grey levels, the same on all three channels."""
    return (rng.standard_normal((size, size)) * 1.5)[..., None]


# --------------------------------------------------------------------------- defect shapes


def _grid(size: int) -> tuple[Array, Array]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return x, y


def stroke(size: int, pts: Array, width: float) -> Array:
    """Anti-aliased coverage (0..1) of a polyline ``width`` px wide, tapering at the ends."""
    x, y = _grid(size)
    best_d, best_s = np.full((size, size), np.inf), np.zeros((size, size))
    seg = np.hypot(*np.diff(pts, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    for k in range(len(pts) - 1):
        a, ab = pts[k], pts[k + 1] - pts[k]
        t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / max(ab @ ab, 1e-9), 0, 1)
        d = np.hypot(x - a[0] - t * ab[0], y - a[1] - t * ab[1])
        closer = d < best_d
        best_d, best_s = np.where(closer, d, best_d), np.where(closer, (cum[k] + t * seg[k]) / cum[-1], best_s)
    w = width * np.clip(np.minimum(best_s, 1 - best_s) / 0.15, 0.3, 1.0)
    return np.clip(w / 2 + 0.5 - best_d, 0.0, 1.0)


def curve(rng: np.random.Generator, centre: Array, length: float, bend: float, n: int = 20) -> Array:
    """Points of a gently bent path of ``length`` px through ``centre``."""
    ang = rng.uniform(0, np.pi)
    d, normal = np.array([np.cos(ang), np.sin(ang)]), np.array([-np.sin(ang), np.cos(ang)])
    a, b = centre - d * length / 2, centre + d * length / 2
    ctrl = centre + normal * bend * length * rng.uniform(-1, 1)
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * ctrl + t ** 2 * b


def blob(rng: np.random.Generator, size: int, centre: Array, radius: float, soft: float) -> Array:
    """Soft-edged irregular blob (0..1): low harmonics for the shape, higher for a ragged edge."""
    x, y = _grid(size)
    dx, dy = x - centre[0], y - centre[1]
    phi, rho = np.arctan2(dy, dx), np.hypot(dx, dy)
    r = np.ones_like(phi)
    for k in range(2, 9):
        r += rng.uniform(0, 0.25 / k ** 0.7) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    return np.clip((radius * r - rho) / max(soft, 0.5) + 0.5, 0.0, 1.0)


def _defect_centre(rng: np.random.Generator, spec: CategorySpec, size: int) -> Array:
    if spec.kind == "texture":
        return rng.uniform(0.15, 0.85, 2) * size
    ang, r = rng.uniform(0, 2 * np.pi), spec.defect_radius * size * np.sqrt(rng.uniform(0, 1))
    return size / 2 + r * np.array([np.cos(ang), np.sin(ang)])


# --------------------------------------------------------------------------- defects
# Each returns (defective image, strength map); both float64, image RGB 0..255.


def scratch(img: Array, rng: np.random.Generator, c: Array, subtle: bool) -> tuple[Array, Array]:
    size = img.shape[0]
    length = rng.uniform(25, 60) if subtle else rng.uniform(40, 150)
    cov = stroke(size, curve(rng, c, length, 0.15), rng.uniform(0.9, 1.4) if subtle else rng.uniform(1.2, 2.6))
    contrast = rng.uniform(0.18, 0.3) if subtle else rng.uniform(0.45, 0.85)
    target = 255.0 if rng.uniform() < 0.5 else 0.0
    return img + (cov * contrast)[..., None] * (target - img), cov


def spot(img: Array, rng: np.random.Generator, c: Array, subtle: bool) -> tuple[Array, Array]:
    size = img.shape[0]
    radius = rng.uniform(2.5, 5) if subtle else rng.uniform(4, 14)
    alpha = blob(rng, size, c, radius, soft=rng.uniform(0.8, 2.0))
    darkness = rng.uniform(0.15, 0.3) if subtle else rng.uniform(0.35, 0.75)
    tint = np.array([0.55, 0.42, 0.25]) if rng.uniform() < 0.5 else np.array([0.3, 0.3, 0.3])  # rust / soot
    stained = img * (1 - darkness) + darkness * tint * img.mean(axis=2, keepdims=True)
    return img + alpha[..., None] * (stained - img), alpha


def cut(img: Array, rng: np.random.Generator, c: Array, subtle: bool) -> tuple[Array, Array]:
    size = img.shape[0]
    length = rng.uniform(12, 25) if subtle else rng.uniform(20, 60)
    pts = curve(rng, c, length, 0.05)
    width = rng.uniform(1.5, 2.5) if subtle else rng.uniform(2.5, 5)
    gap = stroke(size, pts, width)
    normal = np.array([-(pts[-1] - pts[0])[1], (pts[-1] - pts[0])[0]]) / length
    lip = stroke(size, pts + normal * (width / 2 + 0.8), 1.2) * (1 - gap)  # lit edge of the cut
    depth = rng.uniform(0.35, 0.5) if subtle else rng.uniform(0.6, 0.9)
    out = img * (1 - gap * depth)[..., None] + (lip * 0.5 * depth)[..., None] * (255 - img)
    return out, np.maximum(gap, lip)


def colour(img: Array, rng: np.random.Generator, c: Array, subtle: bool) -> tuple[Array, Array]:
    size = img.shape[0]
    radius = rng.uniform(7, 14) if subtle else rng.uniform(12, 38)
    alpha = blob(rng, size, c, radius, soft=rng.uniform(2, 5))
    u8 = np.clip(img, 0, 255).astype(np.float32) / 255
    hsv = cv2.cvtColor(u8, cv2.COLOR_RGB2HSV)
    shift = (rng.uniform(12, 22) if subtle else rng.uniform(25, 70)) * rng.choice([-1, 1])
    hsv[..., 0] = np.mod(hsv[..., 0] + shift, 360)
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.8, 1.3), 0, 1)
    recoloured = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float64) * 255
    return img + alpha[..., None] * (recoloured - img), alpha


def missing(img: Array, rng: np.random.Generator, c: Array, subtle: bool) -> tuple[Array, Array]:
    size = img.shape[0]
    radius = rng.uniform(3, 6) if subtle else rng.uniform(6, 22)
    alpha = blob(rng, size, c, radius, soft=0.7)
    backing = rng.uniform(70, 110) if subtle else rng.uniform(15, 60)
    shade = cv2.GaussianBlur(alpha, (0, 0), 1.5)  # the torn edge throws a shadow inwards
    hole = backing * (0.7 + 0.3 * (1 - shade))[..., None] * np.array([1.0, 0.97, 0.92])
    return img + alpha[..., None] * (hole - img), alpha


DEFECT_FNS = {"colour": colour, "cut": cut, "missing": missing, "scratch": scratch, "spot": spot}


# --------------------------------------------------------------------------- rendering


@dataclass
class Sample:
    """One image (RGB uint8), its defect-free twin and its mask (None for good images)."""

    image: Array
    clean: Array
    mask: Array | None


def render(photo: Array, category: str, split: str, label: str, index: int, seed: int = 0,
           size: int = IMAGE_SIZE) -> Sample:
    """Render one image of ``category`` from its photograph."""
    spec = CATEGORIES[category]
    rng = image_rng(seed, category, split, label, index)
    base = clean_image(photo, spec, split, rng, size)
    noise = sensor_noise(rng, size)
    clean = np.clip(np.rint(base + noise), 0, 255).astype(np.uint8)
    if label == GOOD:
        return Sample(clean, clean, None)
    defective, strength = DEFECT_FNS[label](base, rng, _defect_centre(rng, spec, size), index in SUBTLE_INDICES)
    inside = strength >= MASK_THRESHOLD
    image = np.clip(np.rint(np.where(inside[..., None], defective, base) + noise), 0, 255).astype(np.uint8)
    return Sample(image, clean, inside.astype(np.uint8) * 255)


def plan(n_train: int = N_TRAIN, n_test_good: int = N_TEST_GOOD,
         n_per_defect: int = N_PER_DEFECT) -> list[tuple[str, str, int]]:
    """Every ``(split, label, count)`` of a category."""
    return [("train", GOOD, n_train), ("test", GOOD, n_test_good)] + [("test", d, n_per_defect) for d in DEFECTS]


def _write_png(path: Path, img: Array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), data, PNG_PARAMS):
        raise OSError(f"could not write {path}")


def generate(out_dir: str | os.PathLike[str], categories: list[str] | None = None, seed: int = 0,
             size: int = IMAGE_SIZE, n_train: int = N_TRAIN, n_test_good: int = N_TEST_GOOD,
             n_per_defect: int = N_PER_DEFECT, sources: str | os.PathLike[str] | None = None) -> Path:
    """Write the benchmark under ``out_dir`` in MVTec AD layout and return ``out_dir``.

    Raises :class:`SourceMissing` naming the missing photographs and the package to install."""
    categories = list(categories or CATEGORIES)
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown categories {unknown}; choose from {sorted(CATEGORIES)}")
    folder = source_dir(sources)
    absent = missing_sources(folder, categories)
    if absent:
        raise SourceMissing(f"source photographs not found: {', '.join(map(str, absent))}; install them with "
                            f"'apt-get install {SOURCE_PACKAGE}' or pass --source-dir / set {SOURCE_ENV}")
    out = Path(out_dir)
    for category in categories:
        photo = load_photo(folder, category)
        for split, label, count in plan(n_train, n_test_good, n_per_defect):
            for i in range(count):
                sample = render(photo, category, split, label, i, seed, size)
                _write_png(out / category / split / label / f"{i:03d}.png", sample.image)
                if sample.mask is not None:
                    _write_png(out / category / "ground_truth" / label / f"{i:03d}_mask.png", sample.mask)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: %(default)s)")
    ap.add_argument("--categories", default=",".join(CATEGORIES), help="comma-separated (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    ap.add_argument("--train", type=int, default=N_TRAIN)
    ap.add_argument("--test-good", type=int, default=N_TEST_GOOD)
    ap.add_argument("--per-defect", type=int, default=N_PER_DEFECT)
    ap.add_argument("--source-dir", default=None, help=f"folder with the photographs (default: ${SOURCE_ENV} "
                                                       f"or {DEFAULT_SOURCE_DIR})")
    a = ap.parse_args(argv)
    try:
        out = generate(a.out, a.categories.split(","), a.seed, a.image_size, a.train, a.test_good,
                       a.per_defect, a.source_dir)
    except (SourceMissing, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
