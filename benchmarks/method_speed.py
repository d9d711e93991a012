"""Per-method speed and accuracy on sample_data (run by hand, not in CI).

For each method and category: fit seconds, inference ms/image with torch on CPU (batch 1 and
batch 8), with ONNX Runtime on CPU (batch 1) when the method is exportable, and on CUDA when
present; plus image AUROC and AUPRO. Results go to stdout as a Markdown table.

    python benchmarks/method_speed.py [--methods patchcore,padim|all] [--categories fabric]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from workbench.cli import sample_data_dir
from workbench.core.data import list_categories, load_dataset, read_image
from workbench.core.evaluation import evaluate_model
from workbench.core.methods import METHODS
from workbench.core.training import train_model


def ms_per_image(predict, images: list[np.ndarray], batch: int, repeats: int = 3) -> float:
    predict(images[:batch])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            predict(images[i:i + batch])
        best = min(best, (time.perf_counter() - start) * 1000 / len(images))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="all")
    parser.add_argument("--categories")
    args = parser.parse_args()
    methods = list(METHODS) if args.methods == "all" else args.methods.split(",")
    root = sample_data_dir()
    categories = args.categories.split(",") if args.categories else list_categories(root)
    print(f"machine: {platform.machine()} {platform.processor()}, {torch.get_num_threads()} torch threads, "
          f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}\n")
    print("| category | method | img AUROC | AUPRO | fit s | torch ms/img b1 | torch ms/img b8 | ONNX ms/img b1 |")
    print("|---|---|---|---|---|---|---|---|")
    for category in categories:
        dataset = load_dataset(root, category=category)
        images = [read_image(r.path) for r in dataset.test[:16]]
        for method in methods:
            result = train_model(dataset, method, device="cpu")
            model = result.model
            ev = evaluate_model(model, dataset)
            b1 = ms_per_image(lambda x: model.predict(x), images, 1)
            b8 = ms_per_image(lambda x: model.predict(x), images, 8)
            onnx = "n/a"
            if model.exportable:
                from workbench.core.export import OnnxInferencer, export_onnx

                with tempfile.TemporaryDirectory() as tmp:
                    export_onnx(model, Path(tmp) / "onnx")
                    runtime = OnnxInferencer(Path(tmp) / "onnx", providers=["CPUExecutionProvider"])
                    onnx = f"{ms_per_image(lambda x: runtime.predict(x), images, 1):.1f}"
            aupro = "n/a" if ev.aupro is None else f"{ev.aupro:.3f}"
            print(f"| {category} | {method} | {ev.image_auroc:.3f} | {aupro} | {result.fit_seconds:.1f} | "
                  f"{b1:.1f} | {b8:.1f} | {onnx} |", flush=True)


if __name__ == "__main__":
    main()
