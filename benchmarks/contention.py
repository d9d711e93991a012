"""How much slower the default fit gets when another process keeps every core busy
(run by hand, not in CI).

Fits the default method (PatchCore, default settings) on a sample category in a fresh
process, first alone ("idle") and then while a competitor process runs large float32 matrix
products on as many threads as the machine has cores, and prints the slowdown
(busy fit s / idle fit s). A fair share of two cores between two processes is a 2x slowdown.
Each fit runs in its own interpreter, so the OpenMP settings of the workbench apply exactly as
in the app; the competitor runs with the environment this script was started with.

    python benchmarks/contention.py [--method patchcore] [--category fabric] [--repeats 2]
                                    [--source DIR]   # fit with the workbench found in DIR

The load average before each fit is printed: on a shared machine "idle" is only as idle as
the other users leave it, so compare the ratio, and A/B two versions in the same run
(``--source`` for each, alternating).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "contention.json"


def child_fit(method: str, data: Path, category: str) -> None:
    """(In the child process) fit ``method`` once on the category's good training images."""
    from workbench.core.data import load_dataset, read_image
    from workbench.core.methods import create_method

    dataset = load_dataset(data, category=category)
    images = [read_image(r.path) for r in dataset.train]
    model = create_method(method, device="cpu")
    model.extractor  # noqa: B018 - build the backbone before timing, as an already-open app has it
    start = time.perf_counter()
    model.fit(images)
    print(json.dumps({"fit_s": time.perf_counter() - start, "n_train": len(images),
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}))


def child_busy(threads: int) -> None:
    """(In the competitor process) keep ``threads`` cores busy with matrix products until killed."""
    import torch

    torch.set_num_threads(threads)
    a = torch.randn(1024, 1024)
    while True:
        a = torch.tanh(a @ a)


def run_fit(args: argparse.Namespace, source: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(source)}
    cmd = [sys.executable, __file__, "--child-fit", "--method", args.method, "--category", args.category,
           "--data", str(args.data)]
    load = os.getloadavg()[0]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=source)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "load_before": load, "source": describe(source)}


def describe(source: Path) -> str:
    """The commit of the source checkout (not its path: results files are shared)."""
    rev = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return f"commit {rev.stdout.strip()}" if rev.returncode == 0 else source.name


def busy_fit(args: argparse.Namespace, source: Path) -> dict:
    """One fit while the competitor process keeps the cores busy."""
    competitor = subprocess.Popen([sys.executable, __file__, "--child-busy", str(args.busy_threads)],
                                  stdout=subprocess.DEVNULL)
    try:
        time.sleep(2.0)  # let it reach full speed
        return run_fit(args, source)
    finally:
        competitor.kill()
        competitor.wait()


def measure(args: argparse.Namespace, sources: list[Path]) -> list[dict]:
    """Per source: idle fit then busy fit, ``repeats`` times, the sources interleaved within each
    repeat (so they see the same background load); medians and the slowdown ratio."""
    runs: dict[Path, dict[str, list[dict]]] = {s: {"idle": [], "busy": []} for s in sources}
    for _ in range(args.repeats):
        for source in sources:
            runs[source]["idle"].append(run_fit(args, source))
            runs[source]["busy"].append(busy_fit(args, source))
            print(f"{source.name}: idle {runs[source]['idle'][-1]['fit_s']:.1f} s, "
                  f"busy {runs[source]['busy'][-1]['fit_s']:.1f} s", file=sys.stderr, flush=True)
    out = []
    for source, r in runs.items():
        idle_s, busy_s = median(x["fit_s"] for x in r["idle"]), median(x["fit_s"] for x in r["busy"])
        out.append({"source": describe(source), **r, "idle_s": idle_s, "busy_s": busy_s, "slowdown": busy_s / idle_s})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="patchcore")
    ap.add_argument("--category", default="fabric")
    ap.add_argument("--data", type=Path, default=REPO / "workbench" / "sample_data")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--busy-threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--source", type=Path, action="append", help="workbench source folder (repeatable; "
                    "default: this repository)")
    ap.add_argument("--json", type=Path, default=RESULTS)
    ap.add_argument("--child-fit", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-busy", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child_fit:
        child_fit(a.method, a.data, a.category)
        return 0
    if a.child_busy:
        child_busy(a.child_busy)
        return 0
    results = measure(a, [source.resolve() for source in (a.source or [REPO])])
    print("| source | idle fit s | busy fit s | slowdown | load before (idle, busy) |\n|---|---|---|---|---|")
    for r in results:
        loads = f"{median(x['load_before'] for x in r['idle']):.1f}, {median(x['load_before'] for x in r['busy']):.1f}"
        print(f"| {r['source']} | {r['idle_s']:.1f} | {r['busy_s']:.1f} | {r['slowdown']:.1f}x | {loads} |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.json.with_suffix(".tmp")
    tmp.write_text(json.dumps({"method": a.method, "category": a.category, "cores": os.cpu_count(),
                               "busy_threads": a.busy_threads, "results": results}, indent=1))
    os.replace(tmp, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
