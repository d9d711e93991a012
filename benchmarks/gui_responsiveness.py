"""How responsive does the GUI stay while training and inference run? And is GUI training as fast as the CLI?

Runs the real main window offscreen, imports a sample category through the dataset panel, then
measures the event loop while jobs run the way the app runs them (each in a compute process
driven by a QThread worker, see workbench/gui/workers.py): a training through the training
panel, an inference of the test split, and a second training plus an inference at the same
time. A QTimer ticks every 10 ms on the GUI thread; the longest gap between ticks minus 10 ms is
the longest event-loop stall the user would feel as a frozen window. "job start" is the first
second after a job is started (the click: the panel's own work, the QThread and the hand-over
to the child). Target: < 50 ms in every phase.

Last, the same training runs through the command line (``workbench train``) and the fit times
are compared: GUI fit / CLI fit should be about 1 (the GUI must not train slower).

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_responsiveness.py [--data DIR] [--category C]

Not a test: numbers depend on the machine and its load (printed). One line per phase and a verdict.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TICK_MS = 10
TARGET_MS = 50.0
START_WINDOW_S = 1.0  # "job start": this long after the start call


class StallMeter:
    """Records every gap between ticks of a 10 ms timer on the GUI thread, with its time."""

    def __init__(self, where=lambda: "") -> None:
        from PySide6.QtCore import QTimer

        self.where = where  # what was running, noted with each long stall
        self.ticks: list[tuple[float, float, str]] = []  # (time, gap in ms, where)
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        gap = (now - self._last) * 1000.0
        self.ticks.append((now, gap, self.where() if gap - TICK_MS > 30 else ""))
        self._last = now

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def stats(self, t0: float, t1: float) -> dict[str, float]:
        """Stalls of the ticks that ended in [t0, t1] (a tick ending after t1 may still hold
        a stall that began inside, so the window is closed one gap late)."""
        import numpy as np

        gaps = [g for t, g, _ in self.ticks if t0 < t and t - g / 1000.0 <= t1]
        stalls = np.maximum(np.asarray(gaps or [TICK_MS]) - TICK_MS, 0.0)
        return {"max": float(stalls.max()), "p99": float(np.percentile(stalls, 99)),
                "mean": float(stalls.mean()), "ticks": len(gaps), "seconds": t1 - t0}

    def worst(self, n: int = 15) -> list[tuple[float, str]]:
        return sorted(((g - TICK_MS, w) for _, g, w in self.ticks if w), reverse=True)[:n]


def wait_until(app, condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step timed out")
        app.processEvents()
        time.sleep(0.001)


def ended(*workers) -> bool:
    return all(w is not None and w.state != "running" and w._thread is None for w in workers)


def cli_fit_seconds(data: Path, category: str | None, method: str, params: dict, out: Path, threads: int) -> float:
    """Train the same method through ``workbench train`` and return the fit time it prints."""
    cmd = [sys.executable, "-m", "workbench.cli", "train", "--data", str(data), "--method", method, "--out", str(out),
           "-q", *(["--category", category] if category else [])]
    for name, value in params.items():
        cmd += ["--param", f"{name}={value}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    found = re.search(r"good images in ([0-9.]+) s", done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"CLI training failed: {done.stdout}\n{done.stderr}")
    return float(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset root (default: the shipped sample_data)")
    parser.add_argument("--category", help="category to use (default: the first)")
    parser.add_argument("--method", default="patchcore")
    parser.add_argument("--image-size", type=int, default=128, help="training image size (default 128)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads of the compute process (default 0: all cores, the app's default)")
    parser.add_argument("--in-thread", action="store_true",
                        help="run the jobs in the QThreads of the GUI process (the old way), for comparison")
    parser.add_argument("--nice", type=int, default=None,
                        help="niceness added to the compute process (default: the app's, workers.COMPUTE_NICE)")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI training comparison")
    parser.add_argument("-v", "--verbose", action="store_true", help="list the longest stalls and what ran")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QSettings

    from workbench.core.data import list_categories
    from workbench.core.process_jobs import SPARES
    from workbench.gui import workers
    from workbench.gui.app import create_application
    from workbench.gui.device import device_description
    from workbench.gui.main_window import MainWindow
    from workbench.gui.pipelines import run_inference
    from workbench.gui.sample import sample_data_root
    from workbench.gui.settings import AppSettings
    from workbench.gui.widgets import errors
    from workbench.gui.workers import Worker

    settings = AppSettings(device="cpu", cpu_threads=args.threads)
    workers.set_jobs_in_process(not args.in_thread)
    if args.in_thread and args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = Path(args.data) if args.data else sample_data_root()
    if not data.is_dir():
        print(f"dataset not found: {data} (pass --data)", file=sys.stderr)
        return 2
    category = args.category or (list_categories(data) or [None])[0]
    load_before = os.getloadavg()
    app = create_application(["gui_responsiveness"])
    failures: list[str] = []
    errors.show_error = lambda parent, title, message, details="": failures.append(f"{title}: {message}")  # type: ignore[assignment]

    tmp = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    window = MainWindow(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat), restore_last=False)
    window.jobs._settings = lambda: settings  # the benchmark's threads, not the user's stored settings
    if args.nice is not None:
        window.jobs.nice = args.nice
    window.confirm = lambda title, question: True  # type: ignore[method-assign]
    window.show()
    workers.prestart_compute_process()  # as the app does after showing the window
    window.open_workspace(tmp / "workspace", create=True)
    panel = window.training_panel
    meter = StallMeter(lambda: panel.progress.stage.text())
    params = {"image_size": args.image_size}
    mode = "QThreads in the GUI process" if args.in_thread else "a compute process per job (warm spare)"
    mode += "" if args.in_thread else f", nice +{window.jobs.nice}"
    print(f"device: {device_description(settings)}; jobs in {mode}; data: {data} / {category}; "
          f"{args.method} image_size {args.image_size}")
    results: dict[str, dict[str, float]] = {}
    starts: list[dict[str, float]] = []

    def spare_ready() -> None:
        """Each phase starts as a user would: after the spare child finished importing."""
        if not args.in_thread:  # polled, never blocking: the meter is running
            wait_until(app, lambda: SPARES.idle_count >= 1 and SPARES.wait_ready(0.0), 120)

    def phase(name: str, start_jobs, timeout_s: float = 1800):
        spare_ready()
        t0 = time.perf_counter()
        jobs = start_jobs()
        wait_until(app, lambda: ended(*jobs), timeout_s)
        t1 = time.perf_counter()
        results[name] = meter.stats(t0, t1)
        starts.append(meter.stats(t0, min(t1, t0 + START_WINDOW_S)))
        return jobs

    settle = time.perf_counter()  # the window's first layout and paint are not a job's doing
    wait_until(app, lambda: time.perf_counter() - settle > 2.0, 60)
    meter.start()
    t0 = time.perf_counter()
    wait_until(app, lambda: time.perf_counter() - t0 > 3.0, 10)  # baseline: no job; what the machine's load costs
    results["idle (baseline)"] = meter.stats(t0, time.perf_counter())

    t0 = time.perf_counter()
    worker = window.dataset_panel.import_dataset(data, categories=[category] if category else None)
    wait_until(app, lambda: ended(worker) and window.session.dataset is not None, 300)
    results["import"] = meter.stats(t0, time.perf_counter())

    window.go_to_step(1)
    phase("training", lambda: [panel.start_training(args.method, params)])
    model, outcome = window.session.active_model, panel.last_outcome
    if model is None or outcome is None:
        print("training failed:", failures, file=sys.stderr)
        return 1
    phase("inference", lambda: [panel.start_inference()])
    test_paths = [r.path for r in window.session.dataset.test]
    phase("training + inference", lambda: [
        panel.start_training(args.method, {**params, "seed": 1}),
        window.jobs.start(Worker(run_inference, model.path, test_paths, "test split"), "Inference")])
    results["job start"] = max(starts, key=lambda r: r["max"])
    meter.stop()
    window.close()
    load_after = os.getloadavg()

    measured = [phase for phase in results if phase not in ("idle (baseline)", "import")]
    worst = max(results[phase]["max"] for phase in measured)
    for name, r in results.items():
        print(f"{name:<22} {r['seconds']:7.1f} s   longest stall {r['max']:6.1f} ms   "
              f"p99 {r['p99']:5.1f} ms   mean {r['mean']:4.1f} ms   ({int(r['ticks'])} ticks)")
    verdict = "OK" if worst < TARGET_MS else "TOO SLOW"
    print(f"longest event-loop stall with jobs running: {worst:.1f} ms (target < {TARGET_MS:.0f} ms): {verdict}; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} CPUs")
    ratio_ok = True
    if not args.no_cli:
        cli_fit = cli_fit_seconds(data, category, args.method, params, tmp / "cli-model", args.threads)
        ratio = outcome.fit_seconds / cli_fit
        ratio_ok = ratio <= 1.1
        print(f"training fit time: GUI {outcome.fit_seconds:.1f} s, CLI {cli_fit:.1f} s: GUI / CLI = {ratio:.2f} "
              f"(target <= 1.0, within 10 %: {'OK' if ratio_ok else 'SLOWER'}); load average "
              f"{os.getloadavg()[0]:.1f}")
    if args.verbose:
        for stall, where in meter.worst():
            print(f"  stall {stall:6.1f} ms during: {where}")
    if failures:
        print("errors:", *failures, sep="\n  ")
    return 0 if worst < TARGET_MS and ratio_ok and not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
