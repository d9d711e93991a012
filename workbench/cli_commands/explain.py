"""``workbench explain --model M IMAGE [--xy X,Y] --out DIR``: why was this image flagged.

PatchCore / SPADE: the nearest normal patch of the highest-scoring location (or of ``--xy``,
in the image's own pixels): ``<stem>_evidence.png`` (test patch | nearest normal patch),
``<stem>_test_patch.png``, ``<stem>_normal_patch.png`` and ``<stem>_evidence.json`` (training
image, position, box, distance). PaDiM / DFM: ``<stem>_stage_<n>.png`` per backbone stage and
``<stem>_stages.json`` (each stage's share of the map). Everything is computed by
:mod:`workbench.core.evidence`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli_commands.args import add_common_args

OUTPUT_SUFFIXES = ("_evidence.png", "_evidence.json", "_test_patch.png", "_normal_patch.png", "_stages.json")


def parse_xy(text: str) -> tuple[float, float]:
    """argparse type: 'X,Y' pixel coordinates."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y pixel coordinates like 120,64; got {text!r}") from None
    if min(x, y) < 0:
        raise argparse.ArgumentTypeError(f"coordinates must not be negative, got {text!r}")
    return x, y


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="show the nearest normal patch (PatchCore, SPADE) or per-stage maps "
                                       "(PaDiM, DFM) for an image")
    p.add_argument("--model", required=True, help="model folder (a training package)")
    p.add_argument("image", help="image file")
    p.add_argument("--xy", type=parse_xy, help="location X,Y in the image's own pixels (default: the "
                                                "highest-scoring patch)")
    p.add_argument("--out", required=True, help="folder for the PNG and JSON files (created if needed)")
    add_common_args(p)
    p.set_defaults(func=cmd_explain)


def _output_kind():
    from workbench.core.files import OutputKind

    return OutputKind("explanation", frozenset(), lambda folder: True,
                      extra_files=lambda name: name.endswith(OUTPUT_SUFFIXES) or "_stage_" in name)


def cmd_explain(args: argparse.Namespace) -> int:
    from workbench.core.evidence import EVIDENCE_METHODS, nearest_normal_evidence, stage_maps
    from workbench.core.files import atomic_write_json, check_output_dir
    from workbench.core.methods.package import load_model

    out = Path(args.out)
    check_output_dir(out, _output_kind(), overwrite=True, inputs=[("the model folder", args.model)])
    if not Path(args.image).is_file():
        raise ValueError(f"Image not found: {args.image}")
    model = load_model(args.model, device=args.device or "cpu")
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.image).stem
    if model.name in EVIDENCE_METHODS:
        evidence = nearest_normal_evidence(model, args.image, args.xy)
        for name, picture in evidence.images.items():
            file = "evidence" if name == "side_by_side" else name
            _write_png(out / f"{stem}_{file}.png", picture)
        atomic_write_json(out / f"{stem}_evidence.json", evidence.to_json())
        info = evidence.to_json()
        nearest = info["nearest_normal"]
        where = (f"training image #{nearest['train_index']} {nearest['path']} at x={nearest['x']}, y={nearest['y']}"
                 if nearest and nearest.get("x") is not None else "its source is not recorded")
        print(f"{evidence.chosen_by} at x={info['x']}, y={info['y']} (box {info['box']}): distance "
              f"{info['distance']:.4g} to the nearest normal patch, {where}")
        for note in info["notes"]:
            print(f"note: {note}")
        print(f"Written to {out / (stem + '_evidence.png')} and {out / (stem + '_evidence.json')}")
        return 0
    from workbench.core.data.io import read_image

    maps = stage_maps(model, read_image(args.image))
    total = sum(float(m.clip(min=0).sum()) for m in maps.values()) or 1.0
    shares = {name: float(m.clip(min=0).sum()) / total for name, m in maps.items()}
    for name, m in maps.items():
        _write_png(out / f"{stem}_{name.replace(' ', '_')}.png", _colour(m))
    atomic_write_json(out / f"{stem}_stages.json", {"method": model.name, "image": str(args.image),
                                                    "share_of_map": shares})
    print(", ".join(f"{name}: {share:.0%} of the map" for name, share in shares.items()))
    print(f"Written to {out}")
    return 0


def _colour(m):
    import cv2
    import numpy as np

    scaled = np.clip(m / max(float(m.max()), 1e-12), 0, 1)
    return cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]


def _write_png(path: Path, rgb) -> None:
    import cv2

    from workbench.core.files import atomic_write_bytes

    ok, data = cv2.imencode(".png", rgb[:, :, ::-1])
    if not ok:
        raise OSError(f"could not encode {path}")
    atomic_write_bytes(path, data.tobytes())
