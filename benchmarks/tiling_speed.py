"""Speed of tiled prediction: milliseconds per megapixel, torch and ONNX (onnxruntime).

Fits PatchCore (image_size 256) on the tiles of one generated weave image
(:mod:`workbench.core.data.synthetic_weave`), exports it to ONNX, then times ``predict`` on
generated ``--size`` x ``--size`` images with both scorers. Prints the median of ``--repeats``
runs as ms per megapixel, the tiles per image and the machine load (1-minute load average)
at the start and end, because on a shared machine the load moves the numbers more than
anything else.

    python benchmarks/tiling_speed.py --size 2048 --overlap 0.25 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="side of the test images in pixels")
    parser.add_argument("--tile", type=int, default=256, help="tile side (= the model's image_size)")
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--images", type=int, default=2, help="images scored per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    from workbench.core.data.synthetic_weave import weave
    from workbench.core.export import OnnxInferencer, export_onnx
    from workbench.core.methods import create_method
    from workbench.core.tiling import TilingSpec, count_tiles, cut_tiles

    load_start = os.getloadavg()[0]
    spec = TilingSpec(args.tile, args.overlap)
    model = create_method("patchcore", device=args.device, image_size=args.tile, coreset_ratio=0.01,
                          projection_dim=32)
    model.metadata["tiling"] = spec.to_json()
    t0 = time.perf_counter()
    model.fit(cut_tiles(weave(args.size, 0), spec)[0])
    fit_s = time.perf_counter() - t0
    images = [weave(args.size, 100 + i) for i in range(args.images)]
    megapixels = args.images * args.size * args.size / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(model, Path(tmp) / "onnx")
        scorers = {"torch": model, "onnx": OnnxInferencer(Path(tmp) / "onnx", providers=["CPUExecutionProvider"])}
        results = {}
        for name, scorer in scorers.items():
            scorer.predict(images[:1])  # warm-up (first call builds caches)
            runs = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                scorer.predict(images)
                runs.append(time.perf_counter() - t)
            results[name] = 1000 * statistics.median(runs) / megapixels
    n_tiles = count_tiles(args.size, args.size, spec)
    print(f"tiled PatchCore, {args.size}x{args.size} images, tile {args.tile} overlap {args.overlap} "
          f"({n_tiles} tiles/image), {args.images} images x {args.repeats} runs, device {args.device}, "
          f"{os.cpu_count()} CPUs, torch threads {_torch_threads()}")
    for name, ms in results.items():
        print(f"  {name:<5} {ms:8.1f} ms per megapixel (median)  = {ms * args.size * args.size / 1e6 / 1000:.2f} "
              f"s per image")
    print(f"  fit on the {n_tiles} tiles of one image: {fit_s:.1f} s")
    print(f"  load average (1 min): {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    return 0


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    raise SystemExit(main())
