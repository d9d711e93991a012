"""Rebuild the pre-trained, calibrated sample models shipped in workbench/sample_models.

One PatchCore per sample category (fixed seed, CPU), calibrated at max F1 on the sample test
split (the cut midway between good and defective scores), saved as a training package and an ONNX export, with the expected score and decision
of every sample test image (what the bundles' --selftest and the tests compare against).

    python installer/make_sample_models.py            # writes workbench/sample_models
    python installer/make_sample_models.py --out DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.core.sample_models import build_sample_models

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "workbench" / "sample_models")
    parser.add_argument("--data", type=Path, help="sample dataset root (default: the shipped one)")
    args = parser.parse_args()
    build_sample_models(args.out, args.data)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
