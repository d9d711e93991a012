"""How long after a finished training does the Threshold step show its curves?

Trains the default method on a copy of the sample fabric category whose test split is padded to
50 images (11 test images copied under new names), with the GUI's training job
(``workflows.train_evaluate_save``, which writes the prediction cache), then opens the real
ThresholdPanel offscreen on that model and times ``show()`` -> ``dataLoaded`` (curves, presets,
pixel thresholds, confusion matrix all on screen). For comparison it removes the cache and
times the same again: the path every GUI training took before the cache was written (the test
split was predicted a second time).

    QT_QPA_PLATFORM=offscreen python benchmarks/threshold_after_training.py [--method patchcore] [--repeats 3]

Not a test: numbers depend on the machine. Target: the Threshold step shown within 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_S = 1.0
N_TEST = 50


def padded_category(root: Path) -> Path:
    """The sample fabric category with its test split padded to ``N_TEST`` images."""
    src = REPO / "workbench" / "sample_data" / "fabric"
    dst = root / "fabric"
    shutil.copytree(src, dst)
    tests = sorted((dst / "test").rglob("*.png"))
    for i, path in enumerate(tests[: N_TEST - len(tests)]):
        copy = path.with_name(f"pad{i:02d}_{path.name}")
        shutil.copy(path, copy)
        mask = dst / "ground_truth" / path.parent.name / f"{path.stem}_mask.png"
        if mask.is_file():
            shutil.copy(mask, mask.with_name(f"pad{i:02d}_{path.stem}_mask.png"))
    return dst


def time_threshold_step(model_dir: Path, data_root: Path) -> float:
    """Seconds from opening the Threshold step on ``model_dir`` until its data are shown."""
    from PySide6.QtWidgets import QApplication

    from workbench.core.data import load_dataset
    from workbench.core.workspace import Workspace
    from workbench.gui.panels.threshold_panel import ThresholdPanel
    from workbench.gui.session import Session
    from workbench.gui.workers import JobRunner

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace.create(Path(tmp) / "ws")
        entry = workspace.add_dataset("fabric", data_root.parent, category="fabric")
        workspace.add_model(entry.id, "model", model_dir, {}, {})
        session = Session(JobRunner())
        session.set_workspace(workspace)
        session.set_dataset(entry, load_dataset(data_root.parent, category="fabric"))
        panel = ThresholdPanel(session)
        panel.resize(1400, 900)
        done: list[float] = []
        panel.dataLoaded.connect(lambda: done.append(time.perf_counter()))
        start = time.perf_counter()
        panel.show()
        while not done:
            app.processEvents()
            time.sleep(0.001)
        app.processEvents()  # the first paint of the shown data
        seconds = time.perf_counter() - start
        panel.close()
        panel.deleteLater()
        session.jobs.shutdown()
        session.close()
        return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="patchcore")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args(argv)

    from workbench.core.data import load_dataset
    from workbench.core.jobs import CancelToken
    from workbench.core.workflows import train_evaluate_save

    with tempfile.TemporaryDirectory() as tmp:
        data_root = padded_category(Path(tmp) / "data")
        dataset = load_dataset(data_root.parent, category="fabric")
        assert len(dataset.test) == N_TEST, len(dataset.test)
        model_dir = Path(tmp) / "model"
        start = time.perf_counter()
        train_evaluate_save(dataset, args.method, {}, model_dir, cancel=CancelToken())
        train_s = time.perf_counter() - start
        cached = [time_threshold_step(model_dir, data_root) for _ in range(args.repeats)]
        uncached = []
        for _ in range(args.repeats):
            for cache in model_dir.glob("predictions-*.npz"):
                cache.unlink()
            uncached.append(time_threshold_step(model_dir, data_root))
    result = {"method": args.method, "test_images": N_TEST, "train_evaluate_save_s": round(train_s, 2),
              "threshold_shown_s_with_cache": [round(s, 3) for s in cached],
              "threshold_shown_s_without_cache": [round(s, 3) for s in uncached],
              "load_average": os.getloadavg()}
    print(json.dumps(result, indent=2))
    med = statistics.median(cached)
    print(f"Threshold step shown {med:.2f} s after training (median of {len(cached)}; without the cache "
          f"{statistics.median(uncached):.2f} s); target < {TARGET_S:.0f} s: {'met' if med < TARGET_S else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
