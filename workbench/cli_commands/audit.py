"""``workbench audit``: find suspicious images among the good training images (k-fold scores).

Also holds what ``train`` needs for the same feature: the workspace's exclusions and the
tiling option (``--workspace``, ``--tile``, ``--tile-overlap``), so ``cli.py`` changes by a
few lines only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workbench.cli_commands.args import add_common_args, add_data_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="score every good training image out of fold and list the suspicious ones",
                       description="Splits the good training images into K folds; a model fitted on the "
                                   "other folds scores each fold. Writes audit.csv, audit.json and heat-map "
                                   "overlays of the highest-scoring images to --out, with a suggested "
                                   "cut-off (median + 3.5 x 1.4826 x MAD of the scores).")
    add_data_args(p)
    p.add_argument("--method", default="patchcore", help="method name (see 'workbench methods')")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="hyperparameter, repeatable")
    p.add_argument("--out", required=True, help="folder for audit.csv, audit.json and overlays/ (new, empty "
                                                "or an earlier audit, which is replaced)")
    p.add_argument("--folds", type=_count(2), default=5, help="number of folds K (default 5: K fits in all)")
    p.add_argument("--overlays", type=_count(0), default=20, help="heat-map overlays of the N highest scores "
                                                                  "(default 20)")
    p.add_argument("--workspace", help="workspace folder: already excluded images are marked, and "
                                       "--exclude-suspicious stores the exclusions there")
    p.add_argument("--exclude-suspicious", action="store_true",
                   help="exclude the images above the suggested cut-off from training (stored in --workspace; "
                        "no file is moved or deleted)")
    add_common_args(p)
    p.set_defaults(func=cmd_audit)


def _count(minimum: int):
    from workbench.cli import count

    return count(minimum)


def cmd_audit(args: argparse.Namespace) -> int:
    from workbench.cli import CliError, _load_dataset, _parse_params, progress_bars
    from workbench.core.audit import audit_training_set, check_audit_out, write_audit

    if args.exclude_suspicious and not args.workspace:
        raise CliError("--exclude-suspicious stores the exclusions in a workspace: give --workspace WS.")
    dataset = _load_dataset(args)
    check_audit_out(args.out, dataset.root)
    check_audit_out(args.out, args.data)
    ws, entry = _open_workspace_dataset(args, create=args.exclude_suspicious)
    excluded = ws.excluded_images(entry.id) if ws is not None and entry is not None else []
    try:
        with progress_bars(not args.quiet) as bars:
            result = audit_training_set(dataset, args.method, _parse_params(args.param), folds=args.folds,
                                        device=args.device, excluded=excluded, keep_maps=args.overlays,
                                        progress=bars)
        out = write_audit(result, args.out, overlays=args.overlays)
        print(f"Audited {len(result.entries)} good training images of {dataset.name} with {args.folds}-fold "
              f"{result.method} in {result.seconds:.1f} s. Suggested cut-off {result.cutoff:.4g} "
              f"({result.rule}; median {result.median:.4g}).")
        print(f"{'rank':>4} {'score':>9} {'z':>6}  image")
        for rank, e in enumerate(result.entries[:max(10, len(result.suspicious))], start=1):
            flag = " SUSPICIOUS" if e.suspicious else ""
            flag += " (excluded)" if e.excluded else ""
            print(f"{rank:>4} {e.score:>9.4g} {e.z:>6.1f}  {e.path}{flag}")
        print(f"{len(result.suspicious)} image(s) above the cut-off. Full list: {out / 'audit.csv'}; "
              f"heat maps: {out / 'overlays'}")
        if args.exclude_suspicious and ws is not None and entry is not None:
            flagged = result.suspicious
            ws.set_excluded(entry.id, [e.path for e in flagged], True, reason=f"audit {args.method} "
                            f"{args.folds}-fold: above the cut-off {result.cutoff:.4g}",
                            scores={str(e.path): e.score for e in flagged})
            print(f"Excluded {len(flagged)} image(s) from training in workspace {ws.path} (files untouched; "
                  f"'workbench train --workspace {ws.path} ...' skips them).")
        elif result.suspicious:
            print("To train without them: add --workspace WS --exclude-suspicious, then train with --workspace WS "
                  "(or use 'Audit training images' on the Dataset step of the app).")
    finally:
        if ws is not None:
            ws.close()
    return 0


def _open_workspace_dataset(args: argparse.Namespace, create: bool):
    """(workspace, its entry for --data/--category) or (None, None) without --workspace.
    With ``create`` the dataset is registered when missing (as the app's import would)."""
    if not getattr(args, "workspace", None):
        return None, None
    from workbench.core.workspace import Workspace

    ws = Workspace.open_or_create(args.workspace) if create else Workspace.open(args.workspace)
    try:
        entry = find_dataset_entry(ws, args.data, args.category)
        if entry is None and create:
            entry = ws.add_dataset("", args.data, args.layout, args.category)
    except BaseException:
        ws.close()
        raise
    return ws, entry


def find_dataset_entry(ws: Any, data: str | Path, category: str | None):
    """The workspace's dataset registered for folder ``data`` (and ``category``), or None."""
    root = Path(data).expanduser().resolve()
    for entry in ws.datasets():
        if Path(entry.root).resolve() == root and (entry.category or None) == (category or None):
            return entry
    return None


# ----------------------------------------------------------------------------- for `train`
def add_training_set_args(p: argparse.ArgumentParser) -> None:
    """--workspace (skip excluded images) and --tile/--tile-overlap (tiling) for ``train``."""
    p.add_argument("--workspace", help="workspace folder: skip the training images excluded there "
                                       "(see 'workbench audit --exclude-suspicious')")
    p.add_argument("--tile", type=_count(16), metavar="PIXELS",
                   help="cut large images into overlapping tiles of this many pixels (e.g. the model's "
                        "image_size); the setting is stored in the model, so predict/evaluate/export tile too")
    p.add_argument("--tile-overlap", type=_overlap, default=0.25, metavar="SHARE",
                   help="share of a tile overlapping its neighbour (default 0.25)")


def _overlap(text: str) -> float:
    from workbench.cli import fraction

    return fraction(text)


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """``excluded`` and ``tiling`` keywords of ``train_model`` from ``train``'s arguments."""
    from workbench.core.tiling import TilingSpec

    options: dict[str, Any] = {"tiling": TilingSpec(args.tile, args.tile_overlap) if args.tile else None}
    ws, entry = _open_workspace_dataset(args, create=False)
    if ws is not None:
        try:
            options["excluded"] = ws.excluded_images(entry.id) if entry is not None else []
        finally:
            ws.close()
    return options


def training_note(args: argparse.Namespace, result: Any) -> str:
    """What train skipped and how it tiled, for the summary line."""
    notes = []
    if getattr(args, "workspace", None):
        notes.append(f"skipped {result.n_excluded} image(s) excluded in workspace {args.workspace}")
    if result.n_tiles:
        notes.append(f"trained on {result.n_tiles} tiles of {args.tile} px")
    return ("; " + "; ".join(notes)) if notes else ""
