"""Per-method speed and accuracy on sample_data (run by hand, not in CI).

For each method and category: fit seconds, inference ms/image with torch on CPU (batch 1
and 8), with ONNX Runtime on CPU (batch 1 and 8) for exportable methods, on CUDA (batch 1
and 32, fp16 backbone) when a GPU is present, peak resident memory of the whole run, image
AUROC and AUPRO. Each (method, category) runs in a fresh process so peak memory is its own.
Prints a Markdown table and writes ``benchmarks/results/method_speed.json``.

    python benchmarks/method_speed.py [--methods patchcore,padim|all] [--categories fabric]
                                      [--image-size 256] [--threads N]

``--image-size`` overrides every method's default input size (default: each method's own).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "method_speed.json"


def ms_per_image(predict, images: list[np.ndarray], batch: int, repeats: int = 3) -> float:
    """Best of ``repeats`` passes over ``images`` in batches of ``batch``, after a warm-up."""
    predict(images[:batch])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            predict(images[i:i + batch])
        best = min(best, (time.perf_counter() - start) * 1000 / len(images))
    return best


def machine() -> dict[str, Any]:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average": os.getloadavg()}


def run_one(method: str, category: str, image_size: int | None) -> dict[str, Any]:
    """Train, evaluate and time one method on one category (in this process)."""
    import torch

    from workbench.cli import sample_data_dir
    from workbench.core.data import load_dataset, read_image
    from workbench.core.evaluation import evaluate_model
    from workbench.core.training import train_model

    dataset = load_dataset(sample_data_dir(), category=category)
    images = [read_image(r.path) for r in dataset.test[:16]]
    params = {"image_size": image_size} if image_size else {}
    result = train_model(dataset, method, device="cpu", params=params)
    model = result.model
    ev = evaluate_model(model, dataset)
    row: dict[str, Any] = {
        "method": method, "category": category, "image_size": model.image_size,
        "image_auroc": ev.image_auroc, "pixel_auroc": ev.pixel_auroc, "aupro": ev.aupro,
        "fit_s": result.fit_seconds,
        "torch_cpu_ms_b1": ms_per_image(model.predict, images, 1),
        "torch_cpu_ms_b8": ms_per_image(model.predict, images, 8),
    }
    if model.exportable:
        from workbench.core.export import OnnxInferencer, export_onnx

        with tempfile.TemporaryDirectory() as tmp:
            export_onnx(model, Path(tmp) / "onnx")
            runtime = OnnxInferencer(Path(tmp) / "onnx", providers=["CPUExecutionProvider"])
            for batch in (1, 8):
                runtime.batch_size = batch
                row[f"onnx_cpu_ms_b{batch}"] = ms_per_image(runtime.predict, images, batch)
    if torch.cuda.is_available():
        from workbench.core.methods.package import load_model, save_model

        with tempfile.TemporaryDirectory() as tmp:
            save_model(model, Path(tmp) / "m")
            gpu = load_model(Path(tmp) / "m", device="cuda")
            many = images * 4  # 64 images, so batch 32 runs twice
            for batch in (1, 32):
                gpu.params["batch_size"] = batch
                row[f"cuda_ms_b{batch}"] = ms_per_image(gpu.predict, many, batch)
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def fmt(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="all")
    parser.add_argument("--categories")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--threads", type=int, help="torch/onnxruntime threads (default: all cores)")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "CATEGORY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_one(*args.worker, args.image_size)))
        return

    from workbench.cli import sample_data_dir
    from workbench.core.data import list_categories
    from workbench.core.methods import METHODS

    methods = list(METHODS) if args.methods == "all" else args.methods.split(",")
    categories = args.categories.split(",") if args.categories else list_categories(sample_data_dir())
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, GPU: {info['gpu'] or 'none'}, "
          f"load average {info['load_average'][0]:.1f}\n")
    cols = ["img AUROC", "AUPRO", "fit s", "torch b1", "torch b8", "ONNX b1", "ONNX b8", "CUDA b1", "CUDA b32",
            "peak MB"]
    print("| category | method | " + " | ".join(cols) + " |  (ms/image)")
    print("|---|---|" + "---|" * len(cols))
    rows = []
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    for category in categories:
        for method in methods:
            cmd = [sys.executable, __file__, "--worker", method, category]
            if args.image_size:
                cmd += ["--image-size", str(args.image_size)]
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                print(f"| {category} | {method} | failed: {done.stderr.strip().splitlines()[-1:]} |", flush=True)
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(f"| {category} | {method} | {fmt(r['image_auroc'], 3)} | {fmt(r['aupro'], 3)} | {fmt(r['fit_s'])} | "
                  f"{fmt(r['torch_cpu_ms_b1'])} | {fmt(r['torch_cpu_ms_b8'])} | {fmt(r.get('onnx_cpu_ms_b1'))} | "
                  f"{fmt(r.get('onnx_cpu_ms_b8'))} | {fmt(r.get('cuda_ms_b1'))} | {fmt(r.get('cuda_ms_b32'))} | "
                  f"{r['peak_rss_mb']:.0f} |", flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": []}
    previous["runs"].append({"machine": info, "rows": rows,
                             "date": time.strftime("%Y-%m-%d %H:%M", time.localtime())})
    RESULTS.write_text(json.dumps(previous, indent=1))
    print(f"\nappended to {RESULTS}")


if __name__ == "__main__":
    main()
