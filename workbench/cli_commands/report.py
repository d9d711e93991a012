"""``workbench report``: the inspection report of a model on a dataset (HTML, optionally PDF).

``--model`` is a training package (metrics on ``--data``'s test split, its prediction cache
reused) or an exported ONNX package (``--data`` is then scored with onnxruntime, torch-free, and
the report has image-level metrics only when the folder names give labels). Both output files
are checked before any work starts and written atomically; an existing file is replaced only
when it is an earlier report.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from workbench.cli_commands.args import add_common_args, add_data_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the inspection report (one self-contained HTML file, optional PDF)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model package folder (or an exported ONNX package)")
    add_data_args(p)
    p.add_argument("--out", required=True, metavar="REPORT.html", help="the HTML report to write")
    p.add_argument("--pdf", metavar="REPORT.pdf", help="also write a PDF of the report (Qt's PDF writer)")
    p.add_argument("--calibration", metavar="NAME",
                   help="report the decisions at this saved calibration (default: the active policy)")
    p.add_argument("--no-cache", action="store_true", help="predict again instead of using the stored predictions")
    add_common_args(p)
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from workbench.cli import CliError, progress_bars
    from workbench.core.export.runtime import is_exported_package
    from workbench.core.report import check_report_target, render_html
    from workbench.core.report.render import write_html

    model = Path(args.model)
    if not (model / "model.json").is_file():
        raise CliError(f"{model} is not a model package (no model.json). Give the folder written by "
                       "'workbench train' or 'workbench export'.")
    data = Path(args.data)
    if not data.exists():
        raise CliError(f"Dataset folder not found: {data}")
    check_report_target(args.out, (".html", ".htm"))
    if args.pdf:
        check_report_target(args.pdf, (".pdf",))
        if Path(args.pdf).resolve() == Path(args.out).resolve():
            raise CliError("--out and --pdf name the same file; give two names.")
    with progress_bars(not args.quiet) as bars:
        if is_exported_package(model):
            context = _exported_context(args, bars)
        else:
            from workbench.core.data import load_dataset
            from workbench.core.report import model_report_context

            dataset = load_dataset(data, category=args.category, layout=args.layout)
            context = model_report_context(model, dataset, calibration=args.calibration, device=args.device,
                                           use_cache=not args.no_cache, progress=bars)
    out = write_html(context, args.out)
    print(f"Report written to {out}")
    if args.pdf:
        from workbench.gui.report_pdf import write_pdf

        print(f"PDF written to {write_pdf(render_html(context), args.pdf)}")
    if context.get("warning"):
        print(f"warning: {context['warning']}")
    return 0


def _exported_context(args: argparse.Namespace, bars) -> dict:
    """Score ``--data`` with the exported package (onnxruntime) into a temporary run, then report it."""
    from workbench.cli import CliError
    from workbench.core.report import folder_report_context
    from workbench.core.results_csv import display_path
    from workbench.core.workflows import expand_images, predict_images

    if args.calibration:
        raise CliError("--calibration needs a training package: an exported package carries one policy.")
    folder = Path(args.data) / args.category if args.category else Path(args.data)
    items = expand_images([folder])
    with tempfile.TemporaryDirectory(prefix="workbench-report-") as tmp:
        run = predict_images(args.model, items, Path(tmp) / "run", progress=bars,
                             inputs=[("the model folder", args.model), ("the image folder", folder)])
        return folder_report_context(args.model, folder, Path(tmp) / "run",
                                     stems={display_path(p): stem for p, stem in items},
                                     scoring_seconds=run.seconds, progress=bars)
