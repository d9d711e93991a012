"""``workbench update --model M --add DIR [--out M2]``: add reviewed good images to a fitted model.

PatchCore / SPADE memory banks get the new images' patches, PaDiM / DFM statistics are updated
(:mod:`workbench.core.model_update`); the package gets a new version number, the previous one
stays loadable under ``versions/``, and the calibration is marked as needing a re-check.
"""

from __future__ import annotations

import argparse

from workbench.cli_commands.args import add_common_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("update", help="add good images to a trained model without retraining (PatchCore, SPADE, "
                                      "PaDiM, DFM)")
    p.add_argument("--model", required=True, help="model folder (a training package)")
    p.add_argument("--add", required=True, action="append", metavar="DIR_OR_IMAGE",
                   help="good images (files or folders, repeatable) to add to the model")
    p.add_argument("--out", help="write the new version here (new or empty folder); default: update the model "
                                 "in place, keeping the previous version under versions/")
    add_common_args(p)
    p.set_defaults(func=cmd_update)


def cmd_update(args: argparse.Namespace) -> int:
    from workbench.cli import progress_bars
    from workbench.core.model_update import update_model
    from workbench.core.workflows import expand_images

    images = [path for path, _ in expand_images(args.add)]
    with progress_bars(not args.quiet) as bars:
        outcome = update_model(args.model, images, args.out, device=args.device or "cpu", progress=bars)
    what = (f"{outcome.entries_added} memory-bank entries" if outcome.entries_added else "the statistics updated")
    print(f"Added {len(outcome.added)} good image(s) in {outcome.seconds:.1f} s ({what}); model version "
          f"{outcome.version} saved to {outcome.model_dir}; the previous version is kept in {outcome.previous}")
    for reason in outcome.skipped:
        print(f"skipped: {reason}")
    print("warning: the thresholds were chosen on the old scores: re-check them on labelled images "
          f"(workbench calibrate --model {outcome.model_dir} ...).")
    return 0
