"""Synthetic anomalies for DRAEM: Perlin-noise masks filled with foreign texture.

DRAEM (Zavrtanik et al. 2021) learns what a defect looks like from simulated ones: a
binary mask is cut from thresholded Perlin noise (blobs of random scale and orientation)
and, inside it, the image is blended with an augmented texture image:

    out = image * (1 - mask) + ((1 - beta) * texture + beta * image) * mask,  beta ~ U(0, 0.8)

so pixels outside the mask are untouched and the mask is exactly the altered region.

Deviation forced by working offline: the paper draws textures from the DTD texture data
set, which is not available here. Textures come from the training images themselves (any
of them, including the image being altered), made foreign by strong augmentation: three of
gamma, brightness, sharpness, hue/saturation, solarise, posterise, invert, auto-contrast,
equalise (the paper's list), plus rotation, a random shift and shuffled patches so that
the texture's structure no longer lines up with the image underneath.

Everything is NumPy + OpenCV on float32 RGB images in [0, 1] and seeded through a
``numpy.random.Generator``, so training stays deterministic.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


# --------------------------------------------------------------------------- Perlin noise
def perlin_noise(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D Perlin noise of ``shape`` with ``res`` gradient cells per axis, values about [-1, 1].

    Classic gradient noise: random unit gradients on a (res + 1) lattice, dot products with
    the offsets inside each cell, blended with the quintic fade 6t^5 - 15t^4 + 10t^3.
    ``shape`` need not be a multiple of ``res`` (the noise is computed on the next multiple
    and cropped).
    """
    h, w = shape
    ry, rx = max(1, int(res[0])), max(1, int(res[1]))
    cy, cx = math.ceil(h / ry), math.ceil(w / rx)  # pixels per cell
    angles = rng.uniform(0, 2 * np.pi, (ry + 1, rx + 1))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # [ry+1, rx+1, 2]
    ty = (np.arange(ry * cy) % cy + 0.5) / cy
    tx = (np.arange(rx * cx) % cx + 0.5) / cx
    iy = np.arange(ry * cy) // cy
    ix = np.arange(rx * cx) // cx
    fy, fx = np.meshgrid(ty, tx, indexing="ij")
    gy, gx = np.meshgrid(iy, ix, indexing="ij")

    def corner(dy: int, dx: int) -> np.ndarray:
        g = grads[gy + dy, gx + dx]
        return g[..., 0] * (fx - dx) + g[..., 1] * (fy - dy)

    def fade(t: np.ndarray) -> np.ndarray:
        return t * t * t * (t * (t * 6 - 15) + 10)

    u, v = fade(fx), fade(fy)
    top = corner(0, 0) * (1 - u) + corner(0, 1) * u
    bottom = corner(1, 0) * (1 - u) + corner(1, 1) * u
    noise = (top * (1 - v) + bottom * v) * math.sqrt(2)
    return noise[:h, :w].astype(np.float32)


def perlin_mask(size: int, rng: np.random.Generator, min_scale: int = 0, max_scale: int = 5,
                threshold: float = 0.5) -> np.ndarray:
    """Binary float32 mask [size, size]: Perlin noise of random scale (2^k cells per axis,
    k in [min_scale, max_scale], independently per axis), randomly rotated, thresholded."""
    ry = 2 ** int(rng.integers(min_scale, max_scale + 1))
    rx = 2 ** int(rng.integers(min_scale, max_scale + 1))
    noise = perlin_noise((size, size), (ry, rx), rng)
    angle = float(rng.uniform(-90, 90))
    rot = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    noise = cv2.warpAffine(noise, rot, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return (noise > threshold).astype(np.float32)


# --------------------------------------------------------------------------- texture augmentation
def _gamma(img, rng):
    return np.power(img, rng.uniform(0.5, 2.0))


def _brightness(img, rng):
    return img * rng.uniform(0.8, 1.2) + rng.uniform(-30, 30) / 255.0


def _sharpness(img, rng):
    blurred = cv2.GaussianBlur(img, (0, 0), 1.0)
    return img + rng.uniform(0.0, 2.0) * (img - blurred)


def _hue_saturation(img, rng):
    hsv = cv2.cvtColor(np.clip(img, 0, 1).astype(np.float32), cv2.COLOR_RGB2HSV)  # H in [0, 360)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-50, 50) * 360 / 255) % 360
    hsv[..., 1] = np.clip(hsv[..., 1] + rng.uniform(-50, 50) / 255, 0, 1)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _solarize(img, rng):
    threshold = rng.uniform(32, 128) / 255.0
    return np.where(img >= threshold, 1.0 - img, img)


def _posterize(img, rng):
    levels = 2 ** int(rng.integers(1, 4))
    return np.floor(img * levels) / levels


def _invert(img, rng):
    return 1.0 - img


def _autocontrast(img, rng):
    lo = img.min(axis=(0, 1), keepdims=True)
    hi = img.max(axis=(0, 1), keepdims=True)
    return (img - lo) / np.maximum(hi - lo, 1e-3)


def _equalize(img, rng):
    u8 = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return np.stack([cv2.equalizeHist(u8[..., c]) for c in range(3)], axis=-1).astype(np.float32) / 255.0


def _rotate(img, rng):
    size = img.shape[0]
    rot = cv2.getRotationMatrix2D((size / 2, size / 2), float(rng.uniform(-90, 90)), 1.0)
    return cv2.warpAffine(img, rot, (img.shape[1], size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _shuffle_patches(img, rng):
    """Cut into a g x g grid of tiles and put them back in random order (breaks structure)."""
    g = int(rng.choice([2, 4, 8]))
    h, w = img.shape[:2]
    th, tw = h // g, w // g
    tiles = [img[i * th:(i + 1) * th, j * tw:(j + 1) * tw] for i in range(g) for j in range(g)]
    order = rng.permutation(len(tiles))
    out = img.copy()
    for k, t in enumerate(order):
        i, j = divmod(k, g)
        out[i * th:(i + 1) * th, j * tw:(j + 1) * tw] = tiles[t]
    return out


AUGMENTATIONS = (_gamma, _brightness, _sharpness, _hue_saturation, _solarize, _posterize, _invert,
                 _autocontrast, _equalize)
STRUCTURAL = (_rotate, _shuffle_patches)


def augment_texture(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A foreign-looking version of ``img`` (float32 RGB [0, 1]): a random shift, a structural
    change (rotation or shuffled patches) with probability 1/2, and three photometric ones."""
    h, w = img.shape[:2]
    out = np.roll(img, (int(rng.integers(h)), int(rng.integers(w))), axis=(0, 1))
    if rng.random() < 0.5:
        out = STRUCTURAL[int(rng.integers(len(STRUCTURAL)))](out, rng)
    for k in rng.choice(len(AUGMENTATIONS), 3, replace=False):
        out = np.clip(AUGMENTATIONS[int(k)](np.ascontiguousarray(out, dtype=np.float32), rng), 0, 1)
    return out.astype(np.float32)


# --------------------------------------------------------------------------- the generator
def paste(image: np.ndarray, texture: np.ndarray, mask: np.ndarray, beta: float) -> np.ndarray:
    """Blend ``texture`` into ``image`` inside the binary ``mask`` with opacity ``1 - beta``."""
    m = mask[..., None]
    return (image * (1 - m) + ((1 - beta) * texture + beta * image) * m).astype(np.float32)


class AnomalySynthesizer:
    """Makes (altered image, mask) pairs from good images; ``sources`` are the texture pool.

    ``probability`` is the share of images that get an anomaly at all (the paper: 1/2), so the
    discriminative network also learns that clean images have an empty mask.
    """

    def __init__(self, sources: np.ndarray, rng: np.random.Generator, probability: float = 0.5,
                 max_beta: float = 0.8, max_scale: int = 5) -> None:
        if sources.ndim != 4 or sources.shape[-1] != 3:
            raise ValueError("sources must be an [N, H, W, 3] image array")
        self.sources = sources
        self.rng = rng
        self.probability = probability
        self.max_beta = max_beta
        self.max_scale = max_scale

    def texture(self, size: int) -> np.ndarray:
        src = self.sources[int(self.rng.integers(len(self.sources)))]
        src = src.astype(np.float32) / 255.0 if src.dtype == np.uint8 else src.astype(np.float32)
        if src.shape[0] != size:
            src = cv2.resize(src, (size, size), interpolation=cv2.INTER_AREA)
        return augment_texture(src, self.rng)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``image`` float32 RGB [H, W, 3] in [0, 1] -> (altered image, mask [H, W] of 0/1)."""
        size = image.shape[0]
        if self.rng.random() >= self.probability:
            return image.astype(np.float32), np.zeros(image.shape[:2], np.float32)
        mask = perlin_mask(size, self.rng, max_scale=self.max_scale)
        if not mask.any():
            return image.astype(np.float32), mask
        beta = float(self.rng.uniform(0, self.max_beta))
        return paste(image, self.texture(size), mask, beta), mask

    def batch(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[B, H, W, 3] float images -> (altered [B, H, W, 3], masks [B, H, W])."""
        pairs = [self(img) for img in images]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
