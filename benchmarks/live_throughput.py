"""End-to-end frames per second and latency of the live inspection path.

What is timed is what a line PC runs (``workbench inspect``): the source thread reads and
decodes each image, the scoring loop runs the model, decides with the inspection policy,
writes the CSV row (flushed) and, like the station view, renders the heat map and outline.

Two runs per model:

* **replay, as fast as possible**: the sample test images replayed with nothing dropped;
  frames per second = images / wall time, latency = from the image being decoded to its row
  being written (queue wait included: the source reads ahead by up to two frames).
* **camera at a fixed rate**: synthetic frames offered at ``--rate`` per second (like a
  camera, non-blocking): achieved frames per second, frames dropped, latency.

Default models: the shipped sample PatchCore (washer) as its ONNX export (onnxruntime, the
torch-free path) and as its training package (torch). A GPU is used when onnxruntime /
torch see one (the providers used are printed). torch runs with cores - 1 threads by default, as in
the desktop app: on a busy 2-core machine two torch threads were 5-10x slower than one (contention).

    python benchmarks/live_throughput.py [--model DIR ...] [--images N] [--rate R] [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from workbench.core.live import Frame, LiveInspection, LiveLog, ReplayFolder, load_live_scorer
from workbench.core.sample_models import shipped_models
from workbench.package_data import sample_data_dir


class RateSource:
    """``image`` offered ``rate`` times per second, dropping when the scorer is busy (a camera)."""

    kind = "camera"
    blocking = False

    def __init__(self, image: np.ndarray, rate: float) -> None:
        self.image, self.rate = image, rate

    def describe(self) -> str:
        return f"synthetic camera at {self.rate:g} frames/s"

    def frames(self, stop: threading.Event, notice):
        due, n = time.monotonic(), 0
        while not stop.is_set():
            wait = due - time.monotonic()
            if wait > 0 and stop.wait(wait):
                return
            due += 1.0 / self.rate
            n += 1
            yield Frame(self.kind, f"frame {n}", time.monotonic(), time.time(), self.image)


def describe_scorer(scorer) -> str:
    session = getattr(scorer, "session", None)
    if session is not None:
        return "onnxruntime " + ",".join(p.replace("ExecutionProvider", "") for p in session.get_providers())
    import torch

    return f"torch {getattr(scorer, 'device', '?')} {torch.get_num_threads()} thr"


def run(scorer, source, seconds: float | None, max_images: int | None, log_dir: Path, name: str) -> dict:
    latencies, score_ms = [], []

    def keep(result) -> None:
        latencies.append(result.latency_ms)
        score_ms.append(result.score_ms)

    with LiveLog(log_dir / f"{name}.csv") as log:
        summary = LiveInspection(scorer, source, log=log, render=True, on_result=keep, duration_s=seconds,
                                 max_images=max_images).run()
    return {"images": summary["images"], "fps": summary["images"] / summary["seconds"],
            "dropped": summary["dropped"], "latency_median": statistics.median(latencies),
            "latency_p95": float(np.percentile(latencies, 95)), "model_ms": statistics.median(score_ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="model folder(s) (default: the sample washer model, "
                                                         "ONNX and torch)")
    parser.add_argument("--images", type=int, default=78, help="replay this many images (default 78: twice the set)")
    parser.add_argument("--rate", type=float, default=30.0, help="synthetic camera frame rate (default 30)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the camera run (default 10)")
    parser.add_argument("--torch-threads", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help="torch CPU threads (default: cores - 1, what the desktop app uses: one core is left "
                             "to the window)")
    args = parser.parse_args()
    sample = shipped_models()["washer"]
    models = args.model or [str(sample.export_dir), str(sample.package_dir)]
    folder = sample_data_dir() / "washer" / "test"
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPU cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; images: {folder}")
    header = (f"{'model':<34} {'runtime':<22} {'run':<22} {'images':>6} {'fps':>6} {'dropped':>7} "
              f"{'latency ms (median/p95)':>24} {'model ms':>8}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            scorer = load_live_scorer(model)
            if getattr(scorer, "session", None) is None:  # a torch model
                import torch

                torch.set_num_threads(args.torch_threads)
            image = ReplayFolder(folder).paths[0]
            from workbench.core.data import read_image

            frame = read_image(image)
            scorer.predict([frame])  # warm-up (graph optimisation, first allocation)
            label = f"{Path(model).parent.name}/{Path(model).name}"
            runs = (("replay, max speed", ReplayFolder(folder, loop=True), None, args.images),
                    (f"camera {args.rate:g} fps", RateSource(frame, args.rate), args.seconds, None))
            for i, (what, source, seconds, limit) in enumerate(runs):
                r = run(scorer, source, seconds, limit, Path(tmp), f"{i}-{label.replace('/', '-')}")
                print(f"{label:<34} {describe_scorer(scorer):<22} {what:<22} {r['images']:>6} {r['fps']:>6.1f} "
                      f"{r['dropped']:>7} {r['latency_median']:>15.1f} / {r['latency_p95']:>6.1f} "
                      f"{r['model_ms']:>8.1f}")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
