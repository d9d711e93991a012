"""Fingerprint every method's scores on the shipped sample data, to prove a refactor changes
no numbers (bit for bit) and that packages saved before it still load and score the same.

For every registered method and both sample categories: fit on the good training images with
a fixed seed and a small but real budget (CPU, fixed thread count), score the test images and
record the SHA-256 of the float32 score and map arrays (with their largest absolute values,
for diagnosis when hashes differ).

    # before the change: fingerprints, plus one saved package per method (fitted on the first
    # category) kept outside the repository, with the fingerprint of its scores
    python benchmarks/score_fingerprint.py --out before.json --save-packages OLD_DIR
    # after the change: the same fingerprints, and the old packages load and score identically
    python benchmarks/score_fingerprint.py --out after.json --check-packages OLD_DIR
    python benchmarks/score_fingerprint.py --compare before.json after.json
    # only the old packages (no fits)
    python benchmarks/score_fingerprint.py --check-packages OLD_DIR --packages-only

Only the public API is used (``create_method``, ``fit``, ``predict``, ``save_model``,
``load_model``), so the script runs unchanged on both sides of a refactor.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workbench.core.data import list_categories, load_dataset, read_image  # noqa: E402
from workbench.core.methods import METHODS, create_method  # noqa: E402
from workbench.core.methods.package import load_model, save_model  # noqa: E402

# Small but real: every network trains for a few steps on all 40 good images at 64 px.
BUDGET: dict[str, dict] = {
    "patchcore": {"image_size": 64, "coreset_ratio": 0.1},
    "padim": {"image_size": 64},
    "spade": {"image_size": 64},
    "dfm": {"image_size": 64},
    "stfpm": {"image_size": 64, "epochs": 2},
    "reverse_distillation": {"image_size": 64, "epochs": 2, "embed_dim": 64, "decoder_width": 64},
    "efficientad": {"image_size": 64, "width": 8, "distill_epochs": 1, "epochs": 2},
    "fastflow": {"image_size": 64, "epochs": 2, "flow_steps": 2},
    "cflow": {"image_size": 64, "epochs": 2, "coupling_blocks": 2, "fibers_per_stage": 256},
    "cutpaste": {"image_size": 64, "epochs": 2},
    "draem": {"image_size": 64, "epochs": 2, "reconstruction_width": 8, "discriminative_width": 8},
    "autoencoder": {"image_size": 64, "epochs": 2, "width": 8},
    "ganomaly": {"image_size": 64, "epochs": 2, "width": 8, "latent_dim": 32},
}
SEED = 0
THREADS = 2


def fingerprint(scores: np.ndarray, maps: np.ndarray) -> dict:
    scores, maps = np.ascontiguousarray(scores, np.float32), np.ascontiguousarray(maps, np.float32)
    return {"scores_sha256": hashlib.sha256(scores.tobytes()).hexdigest(),
            "maps_sha256": hashlib.sha256(maps.tobytes()).hexdigest(),
            "scores_max_abs": float(np.abs(scores).max()), "maps_max_abs": float(np.abs(maps).max()),
            "shape": [list(scores.shape), list(maps.shape)]}


def load_images(root: Path, category: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    dataset = load_dataset(root, category=category)
    return [read_image(r.path) for r in dataset.train], [read_image(r.path) for r in dataset.test]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / "sample_data")
    ap.add_argument("--out", type=Path, help="write the fingerprints to this JSON file")
    ap.add_argument("--methods", default="all", help="comma-separated method names (default: all)")
    ap.add_argument("--save-packages", type=Path, help="save one package per method here (first category)")
    ap.add_argument("--check-packages", type=Path, help="load the packages saved here and compare their scores")
    ap.add_argument("--packages-only", action="store_true", help="with --check-packages: skip the fits")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"),
                    help="compare two fingerprint files and exit 1 on any difference")
    args = ap.parse_args(argv)
    if args.compare:
        return compare(*args.compare)

    torch.set_num_threads(THREADS)
    names = list(METHODS) if args.methods == "all" else args.methods.split(",")
    categories = list_categories(args.data)
    data = {c: load_images(args.data, c) for c in categories}
    result: dict = {"threads": THREADS, "seed": SEED, "torch": torch.__version__, "methods": {}, "packages": {}}
    for name in [] if args.packages_only else names:
        for category in categories:
            train, test = data[category]
            start = time.perf_counter()
            model = create_method(name, device="cpu", seed=SEED, **BUDGET[name]).fit(train)
            scores, maps = model.predict(test)
            entry = fingerprint(scores, maps)
            entry["seconds"] = round(time.perf_counter() - start, 1)
            result["methods"].setdefault(name, {})[category] = entry
            print(f"{name:22s} {category:8s} {entry['scores_sha256'][:12]} {entry['maps_sha256'][:12]} "
                  f"{entry['seconds']:6.1f} s", flush=True)
            if category == categories[0] and args.save_packages:
                directory = save_model(model, args.save_packages / name)
                loaded = load_model(directory, device="cpu")
                result["packages"][name] = {"category": category, **fingerprint(*loaded.predict(test))}
    if args.check_packages:
        reference = json.loads((args.check_packages / "fingerprints.json").read_text())
        for name in names:
            expected = reference["packages"][name]
            _, test = data[expected["category"]]
            got = fingerprint(*load_model(args.check_packages / name, device="cpu").predict(test))
            same = all(got[k] == expected[k] for k in ("scores_sha256", "maps_sha256"))
            result["packages"][name] = {"category": expected["category"], **got, "matches_saved": same}
            print(f"package {name:22s} {'identical' if same else 'DIFFERENT'}", flush=True)
    if args.save_packages:
        (args.save_packages / "fingerprints.json").write_text(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    if args.check_packages and not all(p.get("matches_saved") for p in result["packages"].values()):
        return 1
    return 0


def compare(before_path: Path, after_path: Path) -> int:
    before, after = (json.loads(p.read_text()) for p in (before_path, after_path))
    bad = 0
    for name, cats in before["methods"].items():
        for category, b in cats.items():
            a = after["methods"].get(name, {}).get(category)
            same = a is not None and all(a[k] == b[k] for k in ("scores_sha256", "maps_sha256"))
            bad += not same
            print(f"{name:22s} {category:8s} {'identical' if same else 'DIFFERENT'}")
    print("all identical" if not bad else f"{bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
