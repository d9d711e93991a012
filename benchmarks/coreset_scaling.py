"""PatchCore coreset selection: time and peak extra memory against the number of patches.

Greedy k-center selection costs O(N * k) time for N patches and k selected points: linear in
N for a fixed k, and quadratic in N at a fixed coreset ratio (k = ratio * N). The table shows
both, so a user with many images knows which one they hit. Memory beyond the features is O(N):
the projected points and one running-minimum vector, never an N x N matrix.

    python benchmarks/coreset_scaling.py [--dim 152] [--sizes 10000,20000,40000,80000]
"""

from __future__ import annotations

import argparse
import time

import torch

from workbench.core.methods.components.coreset import greedy_coreset


def run(n: int, k: int, dim: int) -> tuple[float, float]:
    feats = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    greedy_coreset(feats, k)
    seconds = time.perf_counter() - start
    # the extra memory is the projected copy [N, 128] + norms + running minimum: all O(N)
    extra_mb = (n * 128 * 4 + 2 * n * 4) / 2**20
    return seconds, extra_mb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dim", type=int, default=152, help="feature size (PatchCore default stages 2+3: 152)")
    parser.add_argument("--sizes", default="10000,20000,40000,80000")
    parser.add_argument("--fixed-k", type=int, default=1000)
    parser.add_argument("--ratio", type=float, default=0.1)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, feature dim {args.dim}\n")
    print("| patches N | k = 1000: s | s per 1k patches | ratio 0.1 (k = N/10): s | extra memory MB |")
    print("|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        fixed, mem = run(n, args.fixed_k, args.dim)
        ratio, _ = run(n, int(n * args.ratio), args.dim)
        print(f"| {n} | {fixed:.2f} | {fixed / n * 1000:.3f} | {ratio:.2f} | {mem:.1f} |", flush=True)


if __name__ == "__main__":
    main()
