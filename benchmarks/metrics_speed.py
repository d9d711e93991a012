"""Time AUPRO and pixel AUROC on a typical and a large test set (run by hand, not in CI).

    python benchmarks/metrics_speed.py
"""

from __future__ import annotations

import platform
import time

import numpy as np

from workbench.core.metrics import aupro, pixel_auroc


def synthetic_set(n_images: int, size: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    masks = [np.zeros((size, size), dtype=bool) for _ in range(n_images)]
    for mask in masks[: n_images // 2]:
        y, x = rng.integers(size // 10, size - size // 10, size=2)
        mask[y - size // 25: y + size // 25, x - size // 17: x + size // 17] = True
    maps = [(rng.random(m.shape) + 0.5 * m).astype(np.float32) for m in masks]
    return masks, maps


def main() -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}")
    for n_images, size in [(40, 256), (100, 512)]:
        masks, maps = synthetic_set(n_images, size)
        for name, fn in [("aupro", aupro), ("pixel_auroc", pixel_auroc)]:
            start = time.perf_counter()
            fn(masks, maps)
            print(f"{name:<12} {n_images:>4} x {size}^2: {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
