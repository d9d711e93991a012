"""``workbench sweep``: train and evaluate many method x category x parameter combinations."""

from __future__ import annotations

import argparse
import sys

from workbench.cli_commands.args import add_cluster_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="train + evaluate every method x category x parameter combination; "
                                     "writes a leaderboard (local process pool or Ray cluster)")
    p.add_argument("--data", required=True, help="dataset folder (MVTec, VisA or plain folders)")
    p.add_argument("--categories", help="comma-separated categories (default: all of the dataset's)")
    p.add_argument("--layout", default="auto", choices=["auto", "mvtec", "visa", "folder"],
                   help="dataset layout (default: detect)")
    p.add_argument("--methods", required=True, help="comma-separated method names, e.g. patchcore,padim")
    p.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2",
                   help="a parameter's values to try (repeatable); applies to the methods that have it")
    p.add_argument("--out", required=True, help="sweep folder: leaderboard.csv/.json and runs/<combination>/")
    add_cluster_args(p)
    p.add_argument("--device", help="'cpu' or 'cuda' (each combination takes one CPU, or one GPU with cuda)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from workbench.cli import CliError, progress_bars
    from workbench.core.cluster import parse_cluster
    from workbench.core.cluster.sweep import parse_grid, plan_sweep, run_sweep
    from workbench.core.data import list_categories

    data = Path(args.data)
    if not data.is_dir():
        raise CliError(f"Dataset folder not found: {data}")
    available = list_categories(data, args.layout)
    if args.categories:
        categories: list[str | None] = [c.strip() for c in args.categories.split(",") if c.strip()]
        missing = [c for c in categories if c not in available]
        if missing:
            raise CliError(f"{data} has no category {', '.join(map(str, missing))}. "
                           f"Available: {', '.join(available) or '(a single dataset: leave --categories out)'}.")
    else:
        categories = list(available) or [None]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    combos = plan_sweep(categories, methods, parse_grid(args.param))
    cluster = parse_cluster(args.cluster) if args.cluster else None
    where = cluster.note if cluster else "a local process pool"
    if not args.quiet:
        print(f"{len(combos)} combination(s) on {where}", file=sys.stderr)
    with progress_bars(not args.quiet) as bars:
        outcome = run_sweep(data, combos, args.out, layout=args.layout, cluster=cluster, workers=args.workers,
                            device=args.device, progress=bars)
    for row in outcome.rows:
        metric = "failed: " + row["error"] if row["status"] != "ok" else (
            f"image AUROC {_num(row['image_auroc'])}, pixel AUROC {_num(row['pixel_auroc'])}, "
            f"fit {_num(row['fit_seconds'], 1)} s")
        print(f"{row['rank'] or '-':>3} {row['category'] or '(dataset)'} {row['method']} {row['params']}: {metric}")
    print(f"Ran {outcome.ran}, skipped {outcome.skipped} finished earlier, {outcome.failed} failed, in "
          f"{outcome.seconds:.1f} s. Leaderboard: {outcome.leaderboard}")
    return 3 if outcome.failed else 0


def _num(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "n/a"
