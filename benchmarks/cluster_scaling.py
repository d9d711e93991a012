"""Images per second of ``predict`` in one process, a local process pool and a local Ray
instance, with 1 and 2 worker processes of one thread each, plus the per-image costs that
bound scaling (image read, scoring, model load, driver-side collection).

Usage: python benchmarks/cluster_scaling.py [--images 200] [--model PATH]
(default model: the shipped fabric sample, exported ONNX). Prints a table; quote it with the
machine's load (uptime), as the numbers move with other work on the same cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from workbench.core.cluster.backends import LocalPoolBackend, RayBackend, ray_installed
from workbench.core.cluster.worker import spec_for
from workbench.core.data import read_image
from workbench.core.export.runtime import OnnxInferencer
from workbench.core.workflows import expand_images, predict_images
from workbench.package_data import sample_data_dir, sample_models_dir


def make_images(folder: Path, count: int) -> None:
    sources = sorted((sample_data_dir() / "fabric" / "test").rglob("*.png"))
    for i in range(count):
        image = cv2.imread(str(sources[i % len(sources)]))
        turn = i // len(sources)
        cv2.imwrite(str(folder / f"img_{i:04d}.png"), np.ascontiguousarray(np.rot90(image, turn)))


def timed_run(model: Path, items, out: Path, backend=None) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    predict_images(model, items, out, backend=backend)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--model", type=Path, default=sample_models_dir() / "fabric" / "onnx")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        make_images(folder, args.images)
        items = expand_images([folder])
        paths = [p for p, _ in items]

        # per-image costs, one thread, in this process
        t = time.perf_counter()
        images = [read_image(p) for p in paths[:50]]
        read_ms = (time.perf_counter() - t) * 1000 / len(images)
        t = time.perf_counter()
        scorer = OnnxInferencer(args.model, threads=1)
        load_s = time.perf_counter() - t
        scorer.predict(images[:8])  # warm-up
        t = time.perf_counter()
        scorer.predict(images)
        score_ms = (time.perf_counter() - t) * 1000 / len(images)

        rows: list[tuple[str, float]] = []
        rows.append(("one process (onnxruntime, all threads)", timed_run(args.model, items, Path(tmp) / "o1")))
        for workers in (1, 2):
            backend = LocalPoolBackend(spec_for(args.model, None, 1), workers)
            rows.append((f"local pool, {workers} worker(s) x 1 thread",
                         timed_run(args.model, items, Path(tmp) / f"p{workers}", backend)))
        if ray_installed():
            for workers in (1, 2):
                backend = RayBackend(spec_for(args.model, None, 1), None, workers)
                seconds = timed_run(args.model, items, Path(tmp) / f"r{workers}", backend)
                backend.close()
                rows.append((f"local Ray, {workers} worker(s) x 1 thread (incl. start)", seconds))
        else:
            print("Ray is not installed (pip install -e '.[cluster]'): Ray rows skipped")

    print(f"\nper image, one thread: read {read_ms:.1f} ms, score {score_ms:.1f} ms; model load {load_s:.2f} s")
    print(f"{'run':58s} {'s':>7s} {'images/s':>9s}")
    for name, seconds in rows:
        print(f"{name:58s} {seconds:7.1f} {args.images / seconds:9.1f}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
