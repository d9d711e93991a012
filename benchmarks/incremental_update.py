"""Incremental update vs full retrain, side by side in one run.

For each method: train on the sample category's good training images (default parameters),
then (a) add N good test images with ``update_model`` and (b) retrain from scratch on the
training images plus those N. Prints both wall times and their ratio, and the largest score
change of the other test images (kNN methods: never up).

    python benchmarks/incremental_update.py [--category washer] [--methods patchcore,spade,padim,dfm] [--add 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--category", default="washer")
    parser.add_argument("--methods", default="patchcore,spade,padim,dfm")
    parser.add_argument("--add", type=int, default=3, help="good images added")
    parser.add_argument("--image-size", type=int, default=256)
    args = parser.parse_args()

    from workbench.core.data import load_dataset
    from workbench.core.data.records import Dataset
    from workbench.core.methods.images import LazyImages
    from workbench.core.methods.package import load_model, save_model
    from workbench.core.model_update import update_model
    from workbench.core.training import train_model
    from workbench.package_data import sample_data_dir

    data = load_dataset(sample_data_dir(), category=args.category)
    goods = [r for r in data.test if r.is_good]
    added, others = goods[:args.add], [r.path for r in data.test if r not in goods[:args.add]]
    print(f"load {os.getloadavg()[0]:.1f}; {len(data.train)} training images, adding {len(added)}; "
          f"image_size {args.image_size}")
    for method in args.methods.split(","):
        params = {"image_size": args.image_size}
        with tempfile.TemporaryDirectory() as tmp:
            model = train_model(data, method, params, device="cpu").model
            save_model(model, Path(tmp) / "m")
            before = model.predict(LazyImages(others))[0]
            start = time.perf_counter()
            update_model(Path(tmp) / "m", [r.path for r in added], device="cpu")
            t_update = time.perf_counter() - start
            start = time.perf_counter()
            bigger = Dataset(data.name, data.root, data.layout, data.records + [
                dataclasses.replace(r, split="train") for r in added], data.report)
            train_model(bigger, method, params, device="cpu")
            t_full = time.perf_counter() - start
            after = load_model(Path(tmp) / "m", device="cpu").predict(LazyImages(others))[0]
        print(f"{method:10} update {t_update:6.1f} s   full retrain {t_full:6.1f} s   ratio {t_full / t_update:5.1f}x   "
              f"largest rise of another image's score {float(np.max(after - before)):+.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
