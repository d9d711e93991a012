"""PatchCore fit time against the number of good training images (run by hand, not in CI).

Renders N good 256 px training images of one hard-benchmark category deterministically
(``hard_data/make_hard_benchmark.py``, training side of the photo, image indices 0..N-1, so
every larger set contains the smaller ones), fits PatchCore with its default settings for each
N and scores the category's usual test split (20 good, 40 defective). Prints fit seconds,
image and pixel AUROC, bank size and peak resident memory per N, and the log-log growth
exponent of the fit time (least squares over all N, and between the smallest and largest N).
A fit whose time grows linearly with N has exponent 1; a fixed coreset ratio with exact greedy
selection is quadratic (exponent 2). Both wall-clock and process CPU seconds are recorded: on a
shared machine the CPU seconds are the fairer measure of the work, and the sizes can be run as
separate processes and combined (``--combine a.json b.json``).

    python benchmarks/fit_scaling.py [--category wood] [--sizes 60,120,240,480,960]
                                     [--param max_bank_size=0] [--threads N] [--json OUT]
    python benchmarks/fit_scaling.py --combine small.json large.json

Needs the Debian package ``mate-backgrounds`` (see ``hard_data/README.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "hard_data"))

import make_hard_benchmark as hard  # noqa: E402

RESULTS = HERE / "results" / "fit_scaling.json"


def training_images(category: str, n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """The first ``n`` good training images of ``category`` (deterministic, in memory)."""
    photo = hard.load_photo(hard.source_dir(), category)
    return [hard.render(photo, category, "train", hard.GOOD, i, seed, size).image for i in range(n)]


def growth_exponent(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) against log(size)."""
    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(seconds, float))
    return float(np.polyfit(x, y, 1)[0])


def _exponents(rows: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """(least-squares, smallest-to-largest) log-log growth exponent of ``key`` over the rows."""
    if len(rows) < 2:
        return math.nan, math.nan
    first, last = rows[0], rows[-1]
    ends = math.log(last[key] / first[key]) / math.log(last["n_train"] / first["n_train"])
    return growth_exponent([r["n_train"] for r in rows], [r[key] for r in rows]), ends


def report(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the rows (sorted by size) and the growth exponents."""
    rows = sorted(rows, key=lambda r: r["n_train"])
    lines = ["| training images | fit s | fit CPU s | CPU s per image | image AUROC | pixel AUROC | AUPRO | bank rows | "
             "peak RSS MB | load |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n_train']} | {r['fit_s']:.1f} | {r['fit_cpu_s']:.1f} | {r['fit_cpu_s'] / r['n_train']:.3f} | "
                     f"{r['image_auroc']:.3f} | {r['pixel_auroc']:.3f} | {r['aupro']:.3f} | {r['bank_rows']} | "
                     f"{r['peak_rss_mb']:.0f} | {r['load_before']:.1f} |")
    for key, what in (("fit_s", "wall-clock"), ("fit_cpu_s", "CPU")):
        fit, ends = _exponents(rows, key)
        lines.append(f"\ngrowth exponent of the {what} fit time (least squares, log-log): {fit:.2f}; "
                     f"smallest to largest N: {ends:.2f}")
    return "\n".join(lines)


def parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = json.loads(value) if value and value[0] in "0123456789-[{tfn" else value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--category", default="wood", choices=sorted(hard.CATEGORIES))
    ap.add_argument("--sizes", default="60,120,240,480,960")
    ap.add_argument("--method", default="patchcore")
    ap.add_argument("--param", action="append", default=[], help="method parameter key=value (repeatable)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    ap.add_argument("--data", default=str(hard.DEFAULT_OUT), help="hard benchmark folder (test split; generated if missing)")
    ap.add_argument("--json", default=str(RESULTS))
    ap.add_argument("--combine", nargs="+", help="print one table from the JSON files of earlier runs")
    a = ap.parse_args(argv)
    if a.combine:
        print(report([r for f in a.combine for r in json.loads(Path(f).read_text())["rows"]]))
        return 0
    import torch

    from workbench.core.data import load_dataset
    from workbench.core.evaluation import evaluate_predictions
    from workbench.core.methods import create_method
    from workbench.core.methods.images import LazyImages

    if a.threads:
        torch.set_num_threads(a.threads)
    sizes = [int(s) for s in a.sizes.split(",")]
    params = parse_params(a.param)
    data = Path(a.data)
    try:
        if not (data / a.category).is_dir():
            hard.generate(data, [a.category])
        train = training_images(a.category, max(sizes), hard.IMAGE_SIZE)
    except hard.SourceMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    test = load_dataset(data, category=a.category).test
    test_images = LazyImages([r.path for r in test])
    rows: list[dict[str, Any]] = []
    print(f"{a.method} {params or 'defaults'} on '{a.category}', torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} cores", file=sys.stderr)
    for n in sizes:
        load_before = os.getloadavg()[0]
        model = create_method(a.method, device="cpu", **params)
        start, cpu_start = time.perf_counter(), time.process_time()
        model.fit(train[:n])
        fit_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        scores, maps = model.predict(test_images)
        ev = evaluate_predictions(test, scores, maps)
        bank = model.state_tensors().get("memory_bank")
        rows.append({"n_train": n, "fit_s": fit_s, "fit_cpu_s": cpu_s, "image_auroc": ev.image_auroc, "pixel_auroc": ev.pixel_auroc,
                     "aupro": ev.aupro, "bank_rows": int(bank.shape[0]) if bank is not None else None,
                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                     "load_before": load_before, "load_after": os.getloadavg()[0]})
        print(f"{n} images: fit {fit_s:.1f} s ({cpu_s:.1f} CPU s), image AUROC {ev.image_auroc:.3f}, load {load_before:.1f}",
              file=sys.stderr, flush=True)
    print(report(rows))
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"method": a.method, "params": params, "category": a.category, "rows": rows,
                               "torch_threads": torch.get_num_threads(),
                               "cores": os.cpu_count(), "platform": platform.platform()}, indent=1))
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
