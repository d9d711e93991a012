"""How long does the review panel take to show the next image with its heat-map overlay?

Builds a dataset of 1024 x 1024 images (synthetic fabric, defects with masks), fake cached
predictions (scores and 256 x 256 maps, as a model at input size 256 would give) and the
real :class:`ReviewPanel` offscreen, then steps through the images with ``next_image()``:

* prefetched: the normal case when stepping with N / arrow keys: the next frames are
  prepared in a pool thread while the user looks at the current one. Measured from the key
  press to the frame drawn (viewport repainted). Target: < 50 ms.
* rapid: the next key press comes as soon as the next frame is ready, while the pool thread
  still prepares the ones after it (both compete for the CPU: a worst case on 2 cores).
* cold: the cache was cleared (a jump to a far image): decode + colour + outline in the pool
  thread, until the frame is on screen.

    QT_QPA_PLATFORM=offscreen python benchmarks/review_scroll.py [--images 24] [--size 1024]

Not a test: numbers depend on the machine. Prints one line per measure and a verdict.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_MS = 50.0


def make_dataset(root: Path, n: int, size: int) -> Path:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    cat = root / "fabric"
    for split, label, count in (("train", "good", 2), ("test", "good", n // 2), ("test", "hole", n - n // 2)):
        folder = cat / split / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img = np.full((size, size, 3), 110, np.uint8)
            img[::16] = 80
            img[:, ::16] = 80
            img = np.clip(img + rng.integers(-12, 12, img.shape), 0, 255).astype(np.uint8)
            if label != "good":
                mask = np.zeros((size, size), np.uint8)
                cv2.circle(mask, (int(rng.integers(100, size - 100)), int(rng.integers(100, size - 100))), 40, 255, -1)
                img[mask > 0] = (30, 30, 30)
                gt = cat / "ground_truth" / label
                gt.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(gt / f"{i:03d}_mask.png"), mask)
            cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()

    import numpy as np
    from PySide6.QtWidgets import QApplication

    from workbench.core.data import load_dataset
    from workbench.core.evaluation import EvalResult
    from workbench.core.workspace import Workspace
    from workbench.gui.panels.review_panel import ReviewPanel
    from workbench.gui.qtmodels.roles import ObjectRole
    from workbench.gui.session import Session
    from workbench.gui.widgets.review_jobs import Predictions
    from workbench.gui.workers import JobRunner

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="review-bench-"))
    make_dataset(tmp / "data", args.images, args.size)
    dataset = load_dataset(tmp / "data", category="fabric")
    workspace = Workspace.create(tmp / "ws")
    entry = workspace.add_dataset("", dataset.root, "mvtec", "fabric")
    session = Session(JobRunner())
    panel = ReviewPanel(session)
    panel.resize(1400, 900)
    panel.show()
    session.set_workspace(workspace)
    session.set_dataset(entry, dataset)

    records = dataset.test
    rng = np.random.default_rng(1)
    maps = rng.random((len(records), 256, 256)).astype(np.float32)
    maps[:, 100:140, 100:140] += 3.0
    scores = maps.reshape(len(records), -1).max(1)
    result = EvalResult(None, None, None, None, None, 0, 0, 0, 0.0, 0.0, records, scores, maps)
    meta = {"thresholds": {"image": {"value": float(np.median(scores))}, "pixel": {"value": 1.5}},
            "score_stats": {"pixel": {"p50": 0.5, "max": 1.5}}}
    panel.set_predictions(Predictions(tmp / "model", result, meta))
    panel.set_filters(split="test")

    def wait(cond, timeout=30.0) -> bool:
        end = time.perf_counter() + timeout
        while not cond():
            if time.perf_counter() > end:
                return False
            app.processEvents()
            time.sleep(0.0005)
        return True

    shown: list[str] = []
    panel.frameShown.connect(shown.append)
    panel.select_row(0)
    wait(lambda: panel.frame is not None)

    def step(mode: str) -> float | None:
        row = panel.current_row()
        if row + 1 >= panel.proxy.rowCount():
            return None
        nxt = panel.proxy.index(row + 1, 0).data(ObjectRole)
        if mode != "cold":  # the next frame is in the cache
            wait(lambda: (nxt.key, panel._generation) in panel.cache)
        if mode == "prefetched":  # the user looked at the image long enough for prefetching to end
            wait(lambda: not panel._prefetch_timer.isActive())
            panel.loader.wait()
            app.processEvents()
        if mode == "cold":
            panel.cache.clear()
            panel.loader.wait()
            panel.cache.clear()
        n = len(shown)
        t0 = time.perf_counter()
        panel.next_image()
        ok = wait(lambda: len(shown) > n)
        t1 = time.perf_counter()
        panel.viewer.main.viewport().repaint()
        dt = (time.perf_counter() - t0) * 1000.0
        parts.append(((t1 - t0) * 1000.0, (time.perf_counter() - t1) * 1000.0))
        return dt if ok else None

    results = {}
    parts: list[tuple[float, float]] = []
    for mode in ("prefetched", "rapid", "cold"):
        panel.select_row(0)
        wait(lambda: panel.frame is not None and panel.frame.key == panel.current_key)
        times = [t for t in (step(mode) for _ in range(panel.proxy.rowCount() - 1)) if t is not None]
        results[mode] = times
        if os.environ.get("REVIEW_BENCH_PARTS"):
            print("   switch / paint ms:", " ".join(f"{a:.0f}/{b:.0f}" for a, b in parts))
        parts.clear()
        print(f"{mode:>10}: {len(times)} steps, median {statistics.median(times):6.1f} ms, "
              f"p95 {sorted(times)[max(0, int(len(times) * 0.95) - 1)]:6.1f} ms, max {max(times):6.1f} ms "
              f"({args.size}x{args.size} px, 256x256 maps)")
    times = sorted(results["prefetched"])
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    load = f", load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores" if hasattr(os, "getloadavg") else ""
    print(f"next image with overlay from cache: median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, "
          f"max {times[-1]:.1f} ms -> {'OK' if p95 < TARGET_MS else 'SLOW'} (target: p95 < {TARGET_MS:.0f} ms{load})")
    panel.loader.wait()
    workspace.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
