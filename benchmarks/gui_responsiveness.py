"""How responsive does the GUI stay while a training and an inference run in workers?

Runs the real main window offscreen, imports a sample category through the dataset panel,
trains a first model through the training panel, then starts a second training (panel)
and an inference (JobRunner + the same pipeline the panel uses) at the same time. A QTimer
ticks every 10 ms on the GUI thread; the longest gap between ticks minus 10 ms is the
longest event-loop stall the user would feel as a frozen window. Target: < 100 ms.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_responsiveness.py [--data DIR] [--category C]

Not a test: numbers depend on the machine. It prints one line per phase and a verdict.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TICK_MS = 10
TARGET_MS = 100.0


class StallMeter:
    """Records the gaps between ticks of a 10 ms timer on the GUI thread."""

    def __init__(self, where=lambda: "") -> None:
        from PySide6.QtCore import QTimer

        self.where = where  # what was running, noted with each long stall
        self.worst: list[tuple[float, str]] = []
        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        gap = (now - self._last) * 1000.0
        self.gaps.append(gap)
        if gap - TICK_MS > 50:
            self.worst.append((gap - TICK_MS, self.where()))
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> dict[str, float]:
        self.timer.stop()
        import numpy as np

        stalls = np.maximum(np.asarray(self.gaps or [TICK_MS]) - TICK_MS, 0.0)
        return {"max": float(stalls.max()), "p99": float(np.percentile(stalls, 99)),
                "mean": float(stalls.mean()), "ticks": len(self.gaps)}


def wait_until(app, condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step timed out")
        app.processEvents()
        time.sleep(0.001)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset root (default: the shipped sample_data)")
    parser.add_argument("--category", help="category to use (default: the first)")
    parser.add_argument("--method", default="patchcore")
    parser.add_argument("--image-size", type=int, default=128, help="training image size (default 128)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: what the app uses, all cores but one)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every stall over 50 ms")
    args = parser.parse_args(argv)

    import torch
    from PySide6.QtCore import QSettings

    from workbench.core.data import list_categories
    from workbench.gui.app import create_application, reserve_gui_core
    from workbench.gui.device import device_description
    from workbench.gui.main_window import MainWindow
    from workbench.gui.pipelines import run_inference
    from workbench.gui.sample import sample_data_root
    from workbench.gui.widgets import errors
    from workbench.gui.workers import Worker

    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        reserve_gui_core()
    data = Path(args.data) if args.data else sample_data_root()
    if not data.is_dir():
        print(f"dataset not found: {data} (pass --data)", file=sys.stderr)
        return 2
    category = args.category or (list_categories(data) or [None])[0]
    app = create_application(["gui_responsiveness"])
    failures: list[str] = []
    errors.show_error = lambda parent, title, message, details="": failures.append(f"{title}: {message}")  # type: ignore[assignment]

    tmp = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    window = MainWindow(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat), restore_last=False)
    window.confirm = lambda title, question: True  # type: ignore[method-assign]
    window.show()
    window.open_workspace(tmp / "workspace", create=True)
    meter = StallMeter(lambda: window.training_panel.progress.stage.text())
    params = {"image_size": args.image_size}
    print(f"device: {device_description()}; data: {data} / {category}; {args.method} image_size {args.image_size}")
    results: dict[str, dict[str, float]] = {}

    meter.start()  # baseline: the same loop with no job, shows what the machine's load costs
    t0 = time.perf_counter()
    wait_until(app, lambda: time.perf_counter() - t0 > 3.0, 10)
    results["idle (baseline)"] = {**meter.stop(), "seconds": time.perf_counter() - t0}

    meter.start()
    t0 = time.perf_counter()
    worker = window.dataset_panel.import_dataset(data, categories=[category] if category else None)
    wait_until(app, lambda: worker.state != "running" and window.session.dataset is not None, 300)
    results["import"] = {**meter.stop(), "seconds": time.perf_counter() - t0}

    panel = window.training_panel
    window.go_to_step(1)
    meter.start()
    t0 = time.perf_counter()
    worker = panel.start_training(args.method, params)
    wait_until(app, lambda: worker.state != "running" and worker._thread is None, 1800)
    results["training"] = {**meter.stop(), "seconds": time.perf_counter() - t0}
    model = window.session.active_model
    if model is None:
        print("training failed:", failures, file=sys.stderr)
        return 1

    meter.start()
    t0 = time.perf_counter()
    training = panel.start_training(args.method, {**params, "seed": 1})
    test_paths = [r.path for r in window.session.dataset.test]
    inference = window.jobs.start(Worker(run_inference, model.path, test_paths, "test split"), "Inference")
    wait_until(app, lambda: all(w.state != "running" and w._thread is None for w in (training, inference)), 1800)
    results["training + inference"] = {**meter.stop(), "seconds": time.perf_counter() - t0}

    window.close()
    worst = max(r["max"] for phase, r in results.items() if phase != "idle (baseline)")
    for phase, r in results.items():
        print(f"{phase:<22} {r['seconds']:7.1f} s   longest stall {r['max']:6.1f} ms   "
              f"p99 {r['p99']:5.1f} ms   mean {r['mean']:4.1f} ms   ({int(r['ticks'])} ticks)")
    verdict = "OK" if worst < TARGET_MS else "TOO SLOW"
    print(f"longest event-loop stall with jobs running: {worst:.1f} ms (target < {TARGET_MS:.0f} ms): "
          f"{verdict}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.verbose:
        for stall, where in sorted(meter.worst, reverse=True)[:15]:
            print(f"  stall {stall:6.1f} ms during: {where}")
    if failures:
        print("errors:", *failures, sep="\n  ")
    return 0 if worst < TARGET_MS and not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
