"""Methods on the hard real-photo benchmark (run by hand, not in CI).

Generates the benchmark with ``benchmarks/hard_data/make_hard_benchmark.py`` when its folder
is missing (it needs the Debian package ``mate-backgrounds``; see ``hard_data/README.md``),
then trains each method with its default settings through the core API
(``train_model``: 10% of the good training images are held out, as in the app) and evaluates
it (``evaluate_model``) on every category. Prints a Markdown table of image AUROC, pixel
AUROC, AUPRO, fit seconds and ms/image (prediction over the test split, image reading
included), the texture and object means per method, and writes
``benchmarks/results/hard_benchmark.json``.

    python benchmarks/hard_benchmark.py [--methods patchcore,padim] [--categories leaf,wood]
                                        [--data DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "hard_data"))

import make_hard_benchmark as hard  # noqa: E402

RESULTS = HERE / "results" / "hard_benchmark.json"


def run_one(data: Path, category: str, method: str) -> dict[str, Any]:
    """Train ``method`` on ``category`` and evaluate it on the test split."""
    from workbench.core.data import load_dataset
    from workbench.core.evaluation import evaluate_model
    from workbench.core.training import train_model

    dataset = load_dataset(data, category=category)
    trained = train_model(dataset, method, device="cpu")
    ev = evaluate_model(trained.model, dataset)
    return {"category": category, "kind": hard.CATEGORIES[category].kind, "method": method,
            "image_auroc": ev.image_auroc, "pixel_auroc": ev.pixel_auroc, "aupro": ev.aupro,
            "fit_s": trained.fit_seconds, "ms_per_image": ev.ms_per_image, "n_train": trained.n_train,
            "n_good": ev.n_good, "n_defect": ev.n_defect}


def means(rows: list[dict[str, Any]], kind: str) -> dict[str, dict[str, float]]:
    """Per method: mean of each metric over the categories of ``kind``."""
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == method and r["kind"] == kind]
        if sel:
            out[method] = {k: sum(r[k] for r in sel) / len(sel)
                           for k in ("image_auroc", "pixel_auroc", "aupro", "fit_s", "ms_per_image")}
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| method | category | image AUROC | pixel AUROC | AUPRO | fit s | ms/image |",
             "|---|---|---|---|---|---|---|"]
    fmt = "| {method} | {category} | {image_auroc:.3f} | {pixel_auroc:.3f} | {aupro:.3f} | {fit_s:.1f} | {ms_per_image:.1f} |"
    for r in rows:
        lines.append(fmt.format(**r))
    for kind in ("texture", "object"):
        for method, m in means(rows, kind).items():
            lines.append(fmt.format(method=f"**{method}**", category=f"**{kind} mean**", **m))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="patchcore,padim")
    ap.add_argument("--categories", default=",".join(hard.CATEGORIES))
    ap.add_argument("--data", default=str(hard.DEFAULT_OUT), help="benchmark folder (generated if missing)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    ap.add_argument("--json", default=str(RESULTS))
    a = ap.parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    data, categories = Path(a.data), a.categories.split(",")
    if any(not (data / c).is_dir() for c in categories):
        try:
            hard.generate(data, categories)
        except hard.SourceMissing as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    rows: list[dict[str, Any]] = []
    for category in categories:
        for method in a.methods.split(","):
            start = time.perf_counter()
            rows.append(dict(run_one(data, category, method), load_average=os.getloadavg()))
            print(f"{method} {category}: image AUROC {rows[-1]['image_auroc']:.3f} "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
            save(Path(a.json), rows, torch)  # after every row: a long run stopped early keeps its rows
    print(table(rows))
    return 0


def save(path: Path, rows: list[dict[str, Any]], torch: Any) -> None:
    """Write the rows so far, the per-kind means and the machine to ``path`` (atomically)."""
    info = {"torch_threads": torch.get_num_threads(), "cores": os.cpu_count(), "torch": torch.__version__,
            "platform": platform.platform(), "rows": rows,
            "texture_mean": means(rows, "texture"), "object_mean": means(rows, "object"), "table": table(rows)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
