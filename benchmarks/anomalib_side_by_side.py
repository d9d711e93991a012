"""Side-by-side run of our PatchCore/PaDiM and anomalib's on sample_data (run by hand, not in CI).

Both sides get the very same inputs: the same 256x256 images, normalised the same way
(the embedded EfficientNet-Lite0 weights' mean = std = 0.5), the same backbone weights
(our embedded ImageNet EfficientNet-Lite0, loaded offline into anomalib's timm extractor),
the same backbone stages (timm ``out_indices``), the same coreset ratio / channel count.

anomalib is installed into its own virtual environment, ``benchmarks/.venv-anomalib``,
created on the first run (``pip install torch==2.14.1 torchvision==0.29.1 anomalib==2.7.0``;
a few GB, several minutes). This script then runs itself there as a worker
(``--worker anomalib``) that loads the shared tensors and weights from a temporary folder,
bypasses Lightning's Engine and drives anomalib's torch models the way its ``fit()`` does:
train-mode forward passes collect embeddings, then ``subsample_embedding`` (PatchCore's
k-center-greedy coreset) or ``PadimModel.fit`` (per-position Gaussians); eval-mode forward
passes give the scores. Our side runs in the project venv through ``workbench.core``.

Measured per method and category, for ours and theirs:

* fit seconds: feature extraction over the training images + coreset / Gaussian fitting
  (best of ``--repeats``; model and backbone construction are not timed);
* ms/image: eval-mode scoring of the preprocessed test tensors in batches of
  ``--batch-size`` (our default 8), best of ``--repeats`` after a warm-up;
* image AUROC on the test split (computed here for both with the same function).

Prints a Markdown table with ratios ours/theirs (fit and ms/image: < 1 means ours is
faster; AUROC: ours - theirs is also shown) and writes
``benchmarks/results/anomalib_side_by_side.json``.

    python benchmarks/anomalib_side_by_side.py [--categories fabric,washer] [--coreset-ratio 0.1]
                                               [--methods patchcore,padim] [--repeats 3]
                                               [--padim-grid-stride 4] [--batch-size 8]

Run CPU-heavy benchmarks alone on the machine (or ``nice`` everything else): the timings
are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(__file__).resolve().parent / ".venv-anomalib"
RESULTS = Path(__file__).resolve().parent / "results" / "anomalib_side_by_side.json"
ANOMALIB_PINS = ["torch==2.14.1", "torchvision==0.29.1", "anomalib==2.7.0"]
BACKBONE = "efficientnet_lite0"
IMAGE_SIZE = 256
# Backbone stages as timm out_indices (efficientnet_lite0: 1 -> stride 4 / 24 ch,
# 2 -> stride 8 / 40 ch, 3 -> stride 16 / 112 ch); our defaults, passed to anomalib as ints.
LAYERS = {"patchcore": (2, 3), "padim": (1, 2, 3)}
PADIM_N_FEATURES = 100
NUM_NEIGHBORS = 9
SEED = 0


# --------------------------------------------------------------------------- shared helpers
def best_ms_per_image(score_batch, x, batch: int, repeats: int) -> float:
    """Best of ``repeats`` passes over tensor ``x`` in batches of ``batch``, after a warm-up."""
    score_batch(x[:batch])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, x.shape[0], batch):
            score_batch(x[i:i + batch])
        best = min(best, (time.perf_counter() - start) * 1000 / x.shape[0])
    return best


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


# --------------------------------------------------------------------------- anomalib side
def anomalib_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Runs inside the anomalib venv: fit and score one method on one category's tensors."""
    import warnings

    warnings.filterwarnings("ignore")
    import anomalib
    import torch
    from safetensors.torch import load_file

    os.environ.setdefault("TQDM_DISABLE", "1")  # KCenterGreedy's per-step progress bar
    work = Path(args.workdir)
    data = load_file(str(work / f"{args.category}.safetensors"))
    weights = load_file(str(work / "backbone.safetensors"))
    x_train, x_test = data["train"], data["test"]
    layers = list(LAYERS[args.method])

    def build():
        torch.manual_seed(SEED)  # PaDiM's channel subset; PatchCore's first coreset point
        common = dict(backbone=BACKBONE, layers=layers, pre_trained=False, pre_processor=False,
                      post_processor=False, evaluator=False, visualizer=False)
        if args.method == "patchcore":
            from anomalib.models import Patchcore

            lm = Patchcore(coreset_sampling_ratio=args.coreset_ratio, num_neighbors=NUM_NEIGHBORS, **common)
        else:
            from anomalib.models import Padim

            lm = Padim(n_features=PADIM_N_FEATURES, **common)
        extractor = lm.model.feature_extractor.feature_extractor  # timm features_only model
        own = extractor.state_dict()
        matched = {k: v for k, v in weights.items() if k in own}
        missing, _ = extractor.load_state_dict(matched, strict=False)
        assert not missing and len(matched) == len(own), f"backbone keys not matched: {missing[:5]}"
        return lm.model

    def fit(model) -> None:
        model.train()
        with torch.no_grad():
            for i in range(0, x_train.shape[0], args.batch_size):
                model(x_train[i:i + args.batch_size])
            if args.method == "patchcore":
                model.subsample_embedding(args.coreset_ratio)
            else:
                model.fit()

    fit_times = []
    model = None
    for _ in range(args.repeats):
        model = build()
        torch.manual_seed(SEED)
        start = time.perf_counter()
        fit(model)
        fit_times.append(time.perf_counter() - start)
    assert model is not None
    model.eval()
    with torch.inference_mode():
        scores = torch.cat([model(x_test[i:i + args.batch_size]).pred_score.reshape(-1)
                            for i in range(0, x_test.shape[0], args.batch_size)])
        ms = best_ms_per_image(model, x_test, args.batch_size, args.repeats)
    extra = {"memory_bank": list(model.memory_bank.shape)} if args.method == "patchcore" else \
        {"gaussian_positions": int(model.gaussian.mean.shape[-1]), "n_features": int(model.n_features)}
    return {"fit_s": min(fit_times), "fit_s_all": fit_times, "ms_per_image": ms,
            "scores": scores.float().tolist(), "anomalib": anomalib.__version__,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), **extra}


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_anomalib_venv() -> None:
    """Create ``benchmarks/.venv-anomalib`` with anomalib (first run only)."""
    python = venv_python()
    if python.exists() and subprocess.run([str(python), "-c", "import anomalib.models"],
                                          capture_output=True).returncode == 0:
        return
    print(f"Creating {VENV} and installing {' '.join(ANOMALIB_PINS)} (first run only; several minutes)...",
          flush=True)
    if not python.exists():
        subprocess.run(["/usr/bin/env", "python3", "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *ANOMALIB_PINS], check=True)


def run_anomalib(method: str, category: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [str(venv_python()), __file__, "--worker", "anomalib", "--method", method, "--category", category,
           "--workdir", str(workdir), "--coreset-ratio", str(args.coreset_ratio),
           "--repeats", str(args.repeats), "--batch-size", str(args.batch_size)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"anomalib worker failed ({method}, {category}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- our side
def timm_state_dict():
    """Our embedded EfficientNet-Lite0 ImageNet weights as a timm classifier state dict."""
    import timm

    from workbench.core.backbones.weights import BackboneSpec, load_weights_into

    full = timm.create_model(BACKBONE, pretrained=False)
    load_weights_into(full, BackboneSpec(BACKBONE))
    return {k: v.contiguous() for k, v in full.state_dict().items()}


def our_params(method: str, args: argparse.Namespace) -> dict[str, Any]:
    common = {"image_size": IMAGE_SIZE, "batch_size": args.batch_size, "seed": SEED,
              "layers": ",".join(map(str, LAYERS[method]))}
    if method == "patchcore":
        return {**common, "coreset_ratio": args.coreset_ratio, "num_neighbors": NUM_NEIGHBORS}
    return {**common, "n_features": PADIM_N_FEATURES, "grid_stride": str(args.padim_grid_stride)}


def run_ours(method: str, train: list, x_test, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from workbench.core.methods import create_method

    fit_times = []
    model = None
    for _ in range(args.repeats):
        model = create_method(method, device="cpu", **our_params(method, args))
        _ = model.extractor  # build the backbone outside the timing, as on the anomalib side
        start = time.perf_counter()
        model.fit(train)
        fit_times.append(time.perf_counter() - start)
    assert model is not None
    with torch.inference_mode():
        scores = torch.cat([model._predict_tensor(x_test[i:i + args.batch_size])[0]
                            for i in range(0, x_test.shape[0], args.batch_size)])
        ms = best_ms_per_image(model._predict_tensor, x_test, args.batch_size, args.repeats)
    extra = {"memory_bank": list(model.memory_bank.shape)} if method == "patchcore" else \
        {"gaussian_positions": int(model.mean.shape[0]), "n_features": int(model.mean.shape[1])}
    return {"fit_s": min(fit_times), "fit_s_all": fit_times, "ms_per_image": ms,
            "scores": scores.float().tolist(), **extra}


def prepare(categories: list[str], workdir: Path) -> dict[str, dict[str, Any]]:
    """Write the backbone weights and each category's preprocessed tensors for both sides."""
    import torch
    from safetensors.torch import save_file

    from workbench.cli import sample_data_dir
    from workbench.core.backbones.weights import BackboneSpec, input_normalization
    from workbench.core.data import load_dataset, read_image
    from workbench.core.methods.images import resize_square, to_tensor

    save_file(timm_state_dict(), str(workdir / "backbone.safetensors"))
    mean, std = input_normalization(BackboneSpec(BACKBONE))
    data = {}
    for category in categories:
        dataset = load_dataset(sample_data_dir(), category=category)
        # resized once up front: our fit() then sees images already at 256 (its own resize is a
        # no-op), so both sides start from the same pixels and neither pays for decoding/resizing
        train = [resize_square(read_image(r.path), IMAGE_SIZE) for r in dataset.train]
        test = [resize_square(read_image(r.path), IMAGE_SIZE) for r in dataset.test]
        x_train = to_tensor(train, IMAGE_SIZE, mean, std)
        x_test = to_tensor(test, IMAGE_SIZE, mean, std)
        save_file({"train": x_train.contiguous(), "test": x_test.contiguous()},
                  str(workdir / f"{category}.safetensors"))
        labels = [r.is_anomalous for r in dataset.test]
        data[category] = {"train": train, "x_test": x_test, "labels": labels,
                          "n_train": len(train), "n_test": len(test), "n_defect": int(sum(labels))}
        assert torch.equal(x_train, to_tensor(train, IMAGE_SIZE, mean, std))
    return data


def machine(anomalib_version: str | None) -> dict[str, Any]:
    import torch

    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu_model(),
            "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "anomalib": anomalib_version, "load_average_at_start": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--categories", default="fabric,washer")
    parser.add_argument("--methods", default="patchcore,padim")
    parser.add_argument("--coreset-ratio", type=float, default=0.1)
    parser.add_argument("--padim-grid-stride", type=int, default=4, choices=(4, 8, 16),
                        help="our PaDiM grid; 4 = anomalib's (a Gaussian per stride-4 position)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=("anomalib",), help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--category", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(anomalib_worker(args)))
        return

    load_at_start = os.getloadavg()
    ensure_anomalib_venv()
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from workbench.core.metrics import image_auroc

    categories = args.categories.split(",")
    methods = args.methods.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="anomalib-sbs-") as tmp:
        workdir = Path(tmp)
        data = prepare(categories, workdir)
        info = None
        print(f"coreset ratio {args.coreset_ratio}, image size {IMAGE_SIZE}, batch {args.batch_size}, "
              f"best of {args.repeats}; ratios are ours/theirs (< 1: ours faster)\n")
        header = ("| category | method | fit s ours | fit s anomalib | fit ratio | ms/img ours | ms/img anomalib "
                  "| ms/img ratio | AUROC ours | AUROC anomalib | AUROC ratio | AUROC diff |")
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for category in categories:
            d = data[category]
            for method in methods:
                ours = run_ours(method, d["train"], d["x_test"], args)
                theirs = run_anomalib(method, category, workdir, args)
                info = info or machine(theirs["anomalib"])
                for side in (ours, theirs):
                    side["image_auroc"] = image_auroc(d["labels"], side["scores"])
                row = {"category": category, "method": method, "n_train": d["n_train"], "n_test": d["n_test"],
                       "n_defect": d["n_defect"], "ours": ours, "anomalib": theirs,
                       "ratio_fit": ours["fit_s"] / theirs["fit_s"],
                       "ratio_ms_per_image": ours["ms_per_image"] / theirs["ms_per_image"],
                       "ratio_auroc": ours["image_auroc"] / theirs["image_auroc"],
                       "auroc_diff": ours["image_auroc"] - theirs["image_auroc"],
                       # AUROC saturates on small sets; how alike the two sides' scores are says more
                       "score_pearson": float(np.corrcoef(ours["scores"], theirs["scores"])[0, 1])}
                rows.append(row)
                print(f"| {category} | {method} | {ours['fit_s']:.2f} | {theirs['fit_s']:.2f} | "
                      f"{row['ratio_fit']:.2f} | {ours['ms_per_image']:.1f} | {theirs['ms_per_image']:.1f} | "
                      f"{row['ratio_ms_per_image']:.2f} | {ours['image_auroc']:.3f} | {theirs['image_auroc']:.3f} | "
                      f"{row['ratio_auroc']:.3f} | {row['auroc_diff']:+.3f} |", flush=True)
    info = info or machine(None)
    info["load_average_at_start"] = load_at_start
    info["load_average_at_end"] = os.getloadavg()
    config = {"image_size": IMAGE_SIZE, "backbone": BACKBONE, "weights": "embedded (both sides)",
              "layers": {m: list(LAYERS[m]) for m in methods}, "coreset_ratio": args.coreset_ratio,
              "num_neighbors": NUM_NEIGHBORS, "padim_n_features": PADIM_N_FEATURES,
              "padim_grid_stride_ours": args.padim_grid_stride, "batch_size": args.batch_size,
              "repeats": args.repeats, "seed": SEED}
    for row in rows:  # keep the JSON readable: scores are only needed for the AUROC
        for side in ("ours", "anomalib"):
            row[side]["scores"] = [round(s, 6) for s in row[side]["scores"]]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": info,
                                   "config": config, "rows": rows}, indent=2) + "\n")
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, anomalib {info['anomalib']}, "
          f"load average at start {load_at_start[0]:.2f}\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
