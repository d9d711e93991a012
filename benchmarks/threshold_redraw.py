"""How fast does the Threshold panel follow the threshold line?

Builds the real ThresholdPanel offscreen (1400 x 900) on a synthetic evaluation of 10,000
image scores (9,000 good, 1,000 defective in 5 defect types) and a 100-point PRO curve,
then moves the threshold 100 times the way a drag does (``InfiniteLine.setValue``, which
emits the same signal as the mouse) and times each move:

* update: the panel's work for one move (confusion via searchsorted, the core's bootstrap
  intervals, labels, markers, the recall table), i.e. the slot's cost;
* redraw: update plus processing the resulting paint events (what the user waits for);
* redraw CPU: the same in process CPU time, which a busy shared machine inflates less.

    QT_QPA_PLATFORM=offscreen python benchmarks/threshold_redraw.py [--moves 100] [--scores 10000]

Not a test: numbers depend on the machine. Target: a move well under 16 ms (60 Hz) on average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_MS = 16.0


def synthetic_data(n_scores: int, pro_points: int, seed: int = 0):
    import numpy as np

    from workbench.core.data import ImageRecord
    from workbench.core.evaluation import EvalResult
    from workbench.core.metrics import ProCurve
    from workbench.gui.qtmodels.threshold_data import threshold_data_from_evaluation

    rng = np.random.default_rng(seed)
    n_defect = n_scores // 10
    types = ("hole", "scratch", "stain", "crease", "dent")
    records = [ImageRecord(Path(f"/bench/good/{i:05d}.png"), "test", "good") for i in range(n_scores - n_defect)]
    records += [ImageRecord(Path(f"/bench/{types[i % 5]}/{i:05d}.png"), "test", types[i % 5]) for i in range(n_defect)]
    scores = np.r_[rng.normal(1.0, 0.4, n_scores - n_defect), rng.normal(2.2, 0.8, n_defect)].astype(np.float32)
    evaluation = EvalResult(None, None, 0.8, None, None, n_scores - n_defect, n_defect, 0, 0.0, 0.0,
                            records=records, scores=scores, maps=np.zeros((n_scores, 1, 1), np.float32))
    data = threshold_data_from_evaluation(evaluation, pixel=False,
                                          image_stats={"n": 50, "mean": 1.0, "std": 0.4, "min": 0.1,
                                                       "p50": 1.0, "max": 2.2})
    fpr = np.r_[0.0, np.linspace(0.001, 0.999, pro_points - 2), 1.0]
    data.pro = ProCurve(fpr=fpr, pro=1 - (1 - fpr) ** 8,
                        thresholds=np.r_[np.inf, np.linspace(5.0, 0.1, pro_points - 2), -np.inf])
    data.aupro = 0.8
    data.pixel_thresholds = {"f1": 2.0, "good_max": 3.0}
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=100)
    parser.add_argument("--scores", type=int, default=10_000)
    parser.add_argument("--pro-points", type=int, default=100)
    args = parser.parse_args(argv)

    import numpy as np

    from workbench.gui.app import create_application
    from workbench.gui.panels.threshold_panel import ThresholdPanel
    from workbench.gui.session import Session
    from workbench.gui.workers import JobRunner

    app = create_application([])
    panel = ThresholdPanel(Session(JobRunner()))
    panel.resize(1400, 900)
    panel.show()
    app.processEvents()
    start = time.perf_counter()
    panel.set_data(synthetic_data(args.scores, args.pro_points))
    app.processEvents()
    load_ms = (time.perf_counter() - start) * 1000
    emitted = []
    panel.thresholdChanged.connect(lambda image, pixel: emitted.append(image))

    lo, hi = np.quantile(panel.data.scores, [0.05, 0.95])
    positions = np.r_[np.linspace(lo, hi, args.moves // 2), np.linspace(hi, lo, args.moves - args.moves // 2)]
    for warm in positions[:5]:  # first paints allocate caches; not what a drag feels like
        panel.histogram.line.setValue(float(warm))
        app.processEvents()
    update_ms, redraw_ms, cpu_ms = [], [], []
    for x in positions:
        c0, t0 = time.process_time(), time.perf_counter()
        panel.histogram.line.setValue(float(x))  # exactly what a mouse drag does on each move
        t1 = time.perf_counter()
        app.processEvents()  # paint the changed plots, labels and table
        t2, c2 = time.perf_counter(), time.process_time()
        update_ms.append((t1 - t0) * 1000)
        redraw_ms.append((t2 - t0) * 1000)
        cpu_ms.append((c2 - c0) * 1000)
    assert len(emitted) >= args.moves and panel.threshold == float(positions[-1])

    print(f"Threshold panel, offscreen 1400x900: {args.scores} image scores, "
          f"{args.pro_points}-point PRO curve, {args.moves} threshold moves")
    print(f"  load (set_data + first paint): {load_ms:.0f} ms")
    for name, values in (("update", update_ms), ("redraw", redraw_ms), ("redraw CPU", cpu_ms)):
        print(f"  {name:10s}: mean {statistics.mean(values):6.2f} ms   median {statistics.median(values):6.2f} ms   "
              f"max {max(values):6.2f} ms")
    if hasattr(os, "getloadavg"):
        print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: on a busy machine wall times "
              "include waiting for a core; 'redraw CPU' is this process's own time per move)")
    mean = statistics.mean(cpu_ms)
    print(f"  verdict: {'OK' if mean < TARGET_MS else 'SLOW'} (mean redraw CPU {mean:.1f} ms vs {TARGET_MS:.0f} ms "
          f"target; wall {statistics.mean(redraw_ms):.1f} ms)")
    panel.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
