"""Model sweeps: every method x category x parameter combination trained and evaluated as a
task of its own, in a local process pool or on a Ray cluster, with a leaderboard.

Each combination writes its model and ``result.json`` into its own folder under ``runs/`` as
soon as it ends, so a sweep whose driver was stopped loses no finished work: a re-run skips
every combination whose result says ``ok`` (a failed one is tried again). A failing
combination is recorded with its error in the leaderboard; it never stops the sweep.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.cluster.backends import ClusterSpec
from workbench.core.files import atomic_write_bytes, atomic_write_json, check_output_dir
from workbench.core.formats import MODEL_PACKAGE, SWEEP_RUN
from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter

SWEEP_FILE = "sweep.json"
RESULT_FILE = "result.json"
LEADERBOARD_FIELDS = ("rank", "category", "method", "params", "status", "image_auroc", "pixel_auroc", "aupro",
                      "fit_seconds", "ms_per_image", "model_dir", "error")


@dataclass(frozen=True)
class SweepCombo:
    """One training to run: ``params`` are (name, text) pairs as given on the command line."""

    category: str | None
    method: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """A folder name that is unique per combination and readable."""
        digest = hashlib.sha256(json.dumps(self.params).encode()).hexdigest()[:8]
        return f"{self.category or 'dataset'}__{self.method}__{digest}"

    def to_json(self) -> dict[str, Any]:
        return {"category": self.category, "method": self.method, "params": dict(self.params)}


@dataclass
class SweepOutcome:
    """What a sweep call did: the leaderboard rows, and how many combinations ran, were skipped
    (already finished) and failed."""

    rows: list[dict[str, Any]]
    ran: int
    skipped: int
    failed: int
    leaderboard: Path
    seconds: float = 0.0
    workers: set[int] = field(default_factory=set)


def parse_grid(pairs: Sequence[str]) -> dict[str, list[str]]:
    """``NAME=V1,V2`` options into {name: [values]}."""
    grid: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, values = pair.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise ValueError(f"--param expects NAME=V1,V2,..., got '{pair}'. See 'workbench methods'.")
        grid[name.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return grid


def plan_sweep(categories: Sequence[str | None], methods: Sequence[str],
               grid: dict[str, list[str]]) -> list[SweepCombo]:
    """Every combination. A parameter applies to the methods that have it (others run once
    without it); a parameter no chosen method has is an error, not silently ignored."""
    from workbench.core.methods import get_method

    classes = {m: get_method(m) for m in methods}
    names = {m: {p.name for p in cls.schema()} for m, cls in classes.items()}
    unknown = [p for p in grid if not any(p in n for n in names.values())]
    if unknown:
        raise ValueError(f"No chosen method has the parameter(s) {', '.join(unknown)}. "
                         "See 'workbench methods' for each method's parameters.")
    combos: list[SweepCombo] = []
    for category in categories:
        for method in classes:
            own = [(p, values) for p, values in grid.items() if p in names[method]]
            for values in itertools.product(*(v for _, v in own)):
                combos.append(SweepCombo(category, classes[method].name,
                                         tuple((p, v) for (p, _), v in zip(own, values))))
    return combos


def run_combo(data: str, layout: str, combo: SweepCombo, combo_dir: str, device: str | None,
              threads: int) -> dict[str, Any]:
    """Train + evaluate one combination into ``combo_dir`` (runs in a worker); the result is
    also written to ``combo_dir/result.json``. Errors become a 'failed' result."""
    from workbench.core.cluster.worker import _limit_threads
    from workbench.core.data import load_dataset
    from workbench.core.workflows import train_evaluate_save

    _limit_threads(threads)
    folder = Path(combo_dir)
    folder.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"combo": combo.to_json(), "pid": os.getpid()}
    model_dir = folder / "model"
    try:
        # a model left by a run killed after saving but before its result: replaced, but only
        # when the folder holds nothing but a model package (the shared output-folder check)
        if check_output_dir(model_dir, MODEL_PACKAGE, overwrite=True):
            import shutil

            shutil.rmtree(model_dir)
        dataset = load_dataset(data, category=combo.category, layout=layout)
        outcome = train_evaluate_save(dataset, combo.method, dict(combo.params), model_dir, device)
        metrics = outcome.metrics
        result.update(status="ok", model_dir=str(Path("runs") / combo.key / "model"), fit_seconds=round(outcome.fit_seconds, 3),
                      image_auroc=metrics.get("image_auroc"), pixel_auroc=metrics.get("pixel_auroc"),
                      aupro=metrics.get("aupro"), ms_per_image=metrics.get("ms_per_image"),
                      params_resolved={k: _plain(v) for k, v in outcome.params.items()})
    except Exception as exc:  # noqa: BLE001 - any failure of one combination is recorded, not raised
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=8))
    atomic_write_json(folder / RESULT_FILE, result)
    return result


def finished_result(out_dir: Path, combo: SweepCombo) -> dict[str, Any] | None:
    """The earlier result of ``combo`` when it finished well and its model is still there."""
    path = out_dir / "runs" / combo.key / RESULT_FILE
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (isinstance(result, dict) and result.get("status") == "ok" and result.get("combo") == combo.to_json()
            and (path.parent / "model" / "model.json").is_file()):
        return result
    return None


def run_sweep(data: str | Path, combos: Sequence[SweepCombo], out_dir: str | Path, *, layout: str = "auto",
              cluster: ClusterSpec | None = None, workers: int | None = None, device: str | None = None,
              progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
              on_result: Callable[[dict[str, Any]], None] | None = None) -> SweepOutcome:
    """Run every combination not finished before; write ``leaderboard.csv`` and ``.json`` in
    ``out_dir`` after each one ends. ``cluster`` None or 'local': a local process pool."""
    start = time.perf_counter()
    out = Path(out_dir)
    check_output_dir(out, SWEEP_RUN, overwrite=True, inputs=[("the dataset", data)])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / SWEEP_FILE, {"data": str(Path(data).resolve()), "layout": layout,
                                         "combos": [c.to_json() for c in combos]})
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for combo in combos:
        earlier = finished_result(out, combo)
        if earlier is not None:
            results[combo.key] = earlier
        else:
            todo.append(combo)
    skipped = len(results)
    report = make_reporter(progress, "sweep", len(combos))
    report(skipped, f"{skipped} finished earlier" if skipped else "")
    board = out / "leaderboard.csv"
    write_leaderboard(out, combos, results)
    pids: set[int] = set()
    threads = 1
    jobs = [(str(data), layout, c, str(out / "runs" / c.key), device, threads) for c in todo]
    runner = _ray_results if cluster is not None and cluster.kind == "ray" else _pool_results
    for combo, result in runner(jobs, cluster, workers, device, cancel):
        results[combo.key] = result
        pids.add(int(result.get("pid", 0)))
        write_leaderboard(out, combos, results)
        if on_result is not None:
            on_result(result)
        report(len(results), f"{combo.category or ''} {combo.method}: {result['status']}")
    failed = sum(1 for c in todo if results[c.key]["status"] != "ok")
    return SweepOutcome(leaderboard_rows(combos, results), len(todo), skipped, failed, board,
                        time.perf_counter() - start, pids)


def _pool_results(jobs: list[tuple], cluster: ClusterSpec | None, workers: int | None, device: str | None,
                  cancel: CancelToken | None) -> Iterator[tuple[SweepCombo, dict[str, Any]]]:
    if not jobs:
        return
    count = max(1, min(len(jobs), workers or os.cpu_count() or 1))
    with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {pool.submit(run_combo, *job): job[2] for job in jobs}
        try:
            while pending:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                done, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    combo = pending.pop(future)
                    try:
                        yield combo, future.result()
                    except Exception as exc:  # noqa: BLE001 - a worker that died: recorded as failed
                        yield combo, {"combo": combo.to_json(), "status": "failed",
                                      "error": f"worker process died ({type(exc).__name__}: {exc})"}
        finally:
            for future in pending:
                future.cancel()


def _ray_results(jobs: list[tuple], cluster: ClusterSpec | None, workers: int | None, device: str | None,
                 cancel: CancelToken | None) -> Iterator[tuple[SweepCombo, dict[str, Any]]]:
    if not jobs:
        return
    import ray

    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"log_to_driver": False}
        if cluster is None or cluster.address is None:
            kwargs.update(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False)
        ray.init(address=cluster.address if cluster else None, **kwargs)
        started = True
    gpu = device is not None and str(device).startswith("cuda")
    # one CPU (or one GPU) per combination, declared so Ray places them where they fit
    remote = ray.remote(num_cpus=1, num_gpus=1 if gpu else 0, max_retries=2)(run_combo)
    pending = {remote.remote(*job): job[2] for job in jobs}
    try:
        while pending:
            if cancel is not None:
                cancel.raise_if_cancelled()
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in done:
                combo = pending.pop(ref)
                try:
                    yield combo, ray.get(ref)
                except ray.exceptions.RayError as exc:
                    yield combo, {"combo": combo.to_json(), "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def leaderboard_rows(combos: Sequence[SweepCombo], results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per combination with a result: best image AUROC first within each category,
    failed ones last."""
    rows = []
    for combo in combos:
        result = results.get(combo.key)
        if result is None:
            continue
        rows.append({"category": combo.category or "", "method": combo.method,
                     "params": json.dumps(dict(combo.params), sort_keys=True), "status": result.get("status"),
                     "image_auroc": result.get("image_auroc"), "pixel_auroc": result.get("pixel_auroc"),
                     "aupro": result.get("aupro"), "fit_seconds": result.get("fit_seconds"),
                     "ms_per_image": result.get("ms_per_image"), "model_dir": result.get("model_dir", ""),
                     "error": result.get("error", "")})

    def order(row: dict[str, Any]) -> tuple:
        auroc = row["image_auroc"]
        return (row["category"], row["status"] != "ok", -(auroc if isinstance(auroc, (int, float)) else -1.0))

    rows.sort(key=order)
    rank, previous = 0, None
    for row in rows:
        rank = rank + 1 if row["category"] == previous else 1
        previous = row["category"]
        row["rank"] = rank if row["status"] == "ok" else ""
    return rows


def write_leaderboard(out: Path, combos: Sequence[SweepCombo], results: dict[str, dict[str, Any]]) -> None:
    """``leaderboard.csv`` and ``leaderboard.json`` (atomic: a reader never sees half a file)."""
    rows = leaderboard_rows(combos, results)
    text = io.StringIO()
    writer = csv.DictWriter(text, LEADERBOARD_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in LEADERBOARD_FIELDS})
    atomic_write_bytes(out / "leaderboard.csv", text.getvalue().encode("utf-8"))
    atomic_write_json(out / "leaderboard.json", {"rows": rows, "planned": len(combos)})


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def sweep(data: str | Path, categories: Sequence[str | None], methods: Sequence[str], grid: dict[str, list[str]],
          out_dir: str | Path, **kwargs: Any) -> SweepOutcome:
    """Plan and run in one call (what the GUI's background job runs); ``kwargs`` as :func:`run_sweep`."""
    return run_sweep(data, plan_sweep(categories, methods, grid), out_dir, **kwargs)


def read_leaderboard(out_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``leaderboard.json`` so far (empty when the sweep wrote none yet)."""
    try:
        data = json.loads((Path(out_dir) / "leaderboard.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    rows = data.get("rows") if isinstance(data, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
