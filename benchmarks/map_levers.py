"""Anomaly-map smoothing of PatchCore on the hard real-photo benchmark (run by hand, not in CI).

The map is PatchCore's patch-distance grid (stride 8 at the default stages 2+3), bilinearly
upsampled to the input size and blurred with a Gaussian of ``smoothing_sigma`` pixels. A wide
blur smears a 1-2 px scratch into a broad blob; too little leaves the blocky grid. This script
fits each category once (``train_model``, as ``hard_benchmark.py``), predicts the test split
with the blur switched off, and evaluates the same raw maps blurred with each sigma, so the
image AUROC is the same for every sigma and only pixel AUROC and AUPRO move. Optional
``--param key=value`` fits a variant (e.g. ``layers=1,2`` for a stride-4 map) instead.

    python benchmarks/map_levers.py [--categories leaf,wood,ladybird] [--sigmas 0,1,2,4,8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "hard_data"))
sys.path.insert(0, str(HERE))

import make_hard_benchmark as hard  # noqa: E402
from fit_scaling import parse_params  # noqa: E402

RESULTS = HERE / "results" / "map_levers.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--categories", default=",".join(hard.CATEGORIES))
    ap.add_argument("--sigmas", default="0,1,2,3,4,6,8")
    ap.add_argument("--param", action="append", default=[], help="PatchCore parameter key=value (repeatable)")
    ap.add_argument("--data", default=str(hard.DEFAULT_OUT))
    ap.add_argument("--json", default=str(RESULTS))
    a = ap.parse_args(argv)
    import torch

    from workbench.core.data import load_dataset
    from workbench.core.evaluation import evaluate_predictions
    from workbench.core.methods.components.ops import gaussian_blur
    from workbench.core.methods.images import LazyImages
    from workbench.core.training import train_model

    data, categories = Path(a.data), a.categories.split(",")
    if any(not (data / c).is_dir() for c in categories):
        hard.generate(data, categories)
    params = parse_params(a.param)
    sigmas = [float(s) for s in a.sigmas.split(",")]
    rows: list[dict[str, Any]] = []
    for category in categories:
        dataset = load_dataset(data, category=category)
        trained = train_model(dataset, "patchcore", params, device="cpu")
        trained.model.module.sigma = 0.0
        records = dataset.test
        scores, raw = trained.model.predict(LazyImages([r.path for r in records]))
        for sigma in sigmas:
            maps = gaussian_blur(torch.from_numpy(raw), sigma).numpy()
            ev = evaluate_predictions(records, scores, maps)
            rows.append({"category": category, "kind": hard.CATEGORIES[category].kind, "sigma": sigma,
                         "image_auroc": ev.image_auroc, "pixel_auroc": ev.pixel_auroc, "aupro": ev.aupro,
                         "params": params, "fit_s": trained.fit_seconds, "load": os.getloadavg()[0]})
            print(f"{category} sigma {sigma:g}: pixel AUROC {ev.pixel_auroc:.3f}, AUPRO {ev.aupro:.3f}",
                  file=sys.stderr, flush=True)
    lines = ["| category | sigma | image AUROC | pixel AUROC | AUPRO |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['category']} | {r['sigma']:g} | {r['image_auroc']:.3f} | {r['pixel_auroc']:.3f} | {r['aupro']:.3f} |")
    for sigma in sigmas:
        sel = [r for r in rows if r["sigma"] == sigma]
        lines.append(f"| **mean** | {sigma:g} | {sum(r['image_auroc'] for r in sel) / len(sel):.3f} | "
                     f"{sum(r['pixel_auroc'] for r in sel) / len(sel):.3f} | {sum(r['aupro'] for r in sel) / len(sel):.3f} |")
    print("\n".join(lines))
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"params": params, "rows": rows}, indent=1))
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
