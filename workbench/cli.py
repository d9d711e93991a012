"""The ``workbench`` command: thin wrappers over :mod:`workbench.core`.

Every sub-command reports progress with tqdm, prints specific errors (which file, what is
wrong, what to do) and exits non-zero on bad input: 2 for bad input, 3 when ``predict``
finished but could not score some images (an ``error`` row: the model gave a non-finite
score), 130 when interrupted. A closed stdout (``workbench train ... | head``) is not an
error: the command carries on and its further output is dropped.
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

EXIT_BAD_INPUT = 2
EXIT_SOME_IMAGES_FAILED = 3
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A user-facing error: printed without a traceback."""


# --------------------------------------------------------------------------- progress
class TqdmProgress:
    """Turns core progress events into one tqdm bar per stage."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bar = None
        self._stage = None

    def __call__(self, event) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if event.stage != self._stage:
            self.close()
            self._stage = event.stage
            self._bar = tqdm(total=event.total or None, desc=event.stage, unit="it", leave=False,
                             file=sys.stderr, dynamic_ncols=True)
        assert self._bar is not None
        self._bar.n = event.current
        if event.metrics:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in event.metrics.items()}, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._stage = None


@contextmanager
def progress_bars(enabled: bool) -> Iterator[TqdmProgress]:
    bars = TqdmProgress(enabled)
    try:
        yield bars
    finally:
        bars.close()


# --------------------------------------------------------------------------- helpers
def finite_float(text: str) -> float:
    """argparse type: a finite number (NaN and infinities are refused with a clear message)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def fraction(text: str) -> float:
    """argparse type: a finite number between 0 and 1 (a rate)."""
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a rate between 0 and 1 (e.g. 0.01 for 1%), got {text!r}")
    return value


def count(minimum: int):
    """argparse type: a whole number >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value
    return parse


class _PipeSafe(io.TextIOBase):
    """stdout/stderr whose reader may go away (``workbench train ... | head``).

    On a broken pipe the stream is pointed at the null device and the command carries on
    (a training run still saves its model), instead of dying with a misleading disk error.
    """

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._divert()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._divert()

    def _divert(self) -> None:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")


def _load_dataset(args: argparse.Namespace):
    from workbench.core.data import load_dataset

    data = Path(args.data)
    if not data.exists():
        raise CliError(f"Dataset folder not found: {data}")
    return load_dataset(data, category=args.category, layout=args.layout)


def _parse_params(pairs: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise CliError(f"--param expects NAME=VALUE, got '{pair}'. See 'workbench methods'.")
        key, value = pair.split("=", 1)
        params[key.strip()] = value.strip()
    return params


def _fmt(value: float | None, digits: int = 3) -> str:
    return "  n/a" if value is None else f"{value:.{digits}f}"


# --------------------------------------------------------------------------- commands
def cmd_methods(args: argparse.Namespace) -> int:
    from workbench.core.methods import METHODS

    for cls in METHODS.values():
        print(f"{cls.name:<12} {cls.title} — {cls.family}\n  {cls.description}")
        if args.verbose:
            for p in cls.schema():
                rng = f" [{p.minimum}..{p.maximum}]" if p.minimum is not None else ""
                choices = f" {{{'|'.join(p.choices)}}}" if p.choices else ""
                print(f"    {p.name}={p.default!r} ({p.kind}{rng}{choices}): {p.help}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from workbench.cli_commands.audit import training_note, training_options
    from workbench.core.methods.package import save_model
    from workbench.core.run_record import save_record
    from workbench.core.training import train_model

    method, params = args.method, _parse_params(args.param)
    if args.record:  # re-run a training record: its data, method, parameters (seed included) and device
        from workbench.core.run_record import rerun_settings

        settings = rerun_settings(args.record, args)
        for line in settings.messages:
            print(line)
        args.data, args.category, args.layout, method = settings.data, None, settings.layout, settings.method
        params, args.device = settings.params, args.device or settings.device
    elif not args.data:
        raise CliError("train needs --data DIR (or --record R.json to re-run a run record).")
    dataset = _load_dataset(args)
    _check_model_out(args, dataset)
    options = training_options(args)  # --workspace exclusions, --tile
    print(dataset.report.summary())
    with progress_bars(not args.quiet) as bars:
        result = train_model(dataset, method, params, device=args.device, progress=bars, **options)
    if args.record:
        settings.check_files(result.record)
    out = save_model(result.model, args.out, overwrite=args.overwrite,
                     inputs=[("the dataset", args.data), ("the dataset", dataset.root)])
    if result.record is not None:
        save_record(out, result.record)
    print(f"Trained {result.model.title} on {result.n_train} good images in {result.fit_seconds:.1f} s "
          f"({result.model.device}){training_note(args, result)}; model saved to {out}")
    return 0


def _check_model_out(args: argparse.Namespace, dataset) -> None:
    """Refuse an unusable --out before hours of training, not after (save_model checks again)."""
    from workbench.core.files import check_output_dir
    from workbench.core.formats import MODEL_PACKAGE

    check_output_dir(args.out, MODEL_PACKAGE, overwrite=args.overwrite,
                     inputs=[("the dataset", args.data), ("the dataset", dataset.root)])


def _run_policy(args: argparse.Namespace):
    """The model's inspection policy, with this run's --roi / --ignore masks (if given) in place of its own."""
    from workbench.core.calibration.policy import load_mask_image, load_policy

    policy = load_policy(args.model)
    changes = {}
    if getattr(args, "roi", None):
        changes["roi"] = load_mask_image(args.roi)
    if getattr(args, "ignore", None):
        changes["ignore"] = load_mask_image(args.ignore)
    return policy.replace(**changes) if changes else policy


def _pct(iv: dict | None) -> str:
    if iv is None:
        return "n/a"
    return f"{iv['estimate']:.1%} ({iv['k']}/{iv['n']}; 95% CI {iv['low']:.1%}-{iv['high']:.1%})"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from workbench.core.methods.package import load_model
    from workbench.core.workflows import evaluate_at_policy

    model = load_model(args.model, device=args.device)
    policy = _run_policy(args)
    dataset = _load_dataset(args)
    with progress_bars(not args.quiet) as bars:
        checked = evaluate_at_policy(args.model, dataset, policy=policy, model=model, use_cache=False, progress=bars)
    result, at_policy = checked.evaluation, checked.report
    metrics = {"model": str(args.model), "method": model.name, "dataset": dataset.name, **checked.to_json()}
    print(f"{model.title} on {dataset.name}: image AUROC {_fmt(result.image_auroc)}, pixel AUROC "
          f"{_fmt(result.pixel_auroc)}, AUPRO {_fmt(result.aupro)}, F1-max {_fmt(result.f1_max)} at "
          f"threshold {_fmt(result.f1_threshold, 4)}; {result.ms_per_image:.1f} ms/image "
          f"({result.n_good} good, {result.n_defect} defective test images)")
    if result.masked:
        print("ROI/ignore masks applied: image scores ignore the masked-out pixels, which are also left out "
              "of pixel AUROC and AUPRO")
    if result.n_without_mask:
        print(f"note: {result.n_without_mask} defective image(s) have no mask and are left out of pixel metrics")
    if at_policy is None:
        print("The model has no threshold: calibrate it to see decisions at its policy.")
    else:
        band = "" if policy.ok_threshold is None else f", OK below {policy.ok_threshold:.6g} (REVIEW between)"
        print(f"At the active policy ({policy.source or 'no source'}: NG from {policy.ng_threshold:.6g}{band}):")
        print(f"  {'':8} {'OK':>6} {'REVIEW':>6} {'NG':>6}")
        for truth in ("good", "defect"):
            row = at_policy["confusion"][truth]
            print(f"  {truth:<8} {row['OK']:>6} {row['REVIEW']:>6} {row['NG']:>6}")
        rates = at_policy["rates"]
        for key, label in (("recall", "recall (not passed as OK)"), ("false_alarm_rate", "false alarms (good -> NG)"),
                           ("escape_rate", "escapes (defect -> OK)"), ("review_rate", "sent to REVIEW"),
                           ("precision", "precision of NG")):
            print(f"  {label:<27} {_pct(rates.get(key))}")
    if checked.warning:
        print(f"warning: {checked.warning}")
    from workbench.core.model_versions import recheck_message

    if recheck_message(model.metadata):
        print(f"warning: {recheck_message(model.metadata)}")
    from workbench.core.run_record import save_record
    from workbench.core.workflows import evaluation_record

    save_record(args.model, evaluation_record(model, dataset, result))
    if args.json:
        from workbench.core.files import atomic_write_json

        atomic_write_json(args.json, metrics)
        print(f"Metrics written to {args.json}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from workbench.core.calibration import calibrate, save_calibration
    from workbench.core.evaluation import evaluate_model
    from workbench.core.methods.package import load_model

    if args.target_fpr is not None:
        preset, target = ("guaranteed_fpr" if args.confidence is not None else "false_alarm"), args.target_fpr
    elif args.target_recall is not None:
        preset, target = "recall", args.target_recall
    elif args.threshold is not None:
        preset, target = "manual", args.threshold
    else:
        preset, target = "max_f1", None
    if args.confidence is not None and args.target_fpr is None:
        raise CliError("--confidence goes with --target-fpr (a false-alarm rate guaranteed with that confidence).")
    model = load_model(args.model, device=args.device)
    policy = _run_policy(args)
    dataset = _load_dataset(args)
    with progress_bars(not args.quiet) as bars:
        evaluation = evaluate_model(model, dataset, progress=bars, policy=policy)
    cal = calibrate(evaluation, preset, target, name=args.name, pixel_preset=args.pixel,
                    min_defect_area=args.min_area, normalization=args.normalization,
                    image_stats=model.metadata.get("score_stats", {}).get("image"),
                    data={"dataset": dataset.name, "root": str(dataset.root), "split": "test"},
                    ok_threshold=args.ok_threshold, ok_recall=args.ok_recall,
                    confidence=args.confidence if args.confidence is not None else 0.95,
                    policy=policy, method=model.name)
    save_calibration(args.model, cal, policy=policy)
    c, iv = cal.confusion, cal.intervals
    def ci(key: str) -> str:
        return f" (95% CI {iv[key]['low']:.1%}-{iv[key]['high']:.1%})" if key in iv else ""
    band = "" if cal.ok_threshold is None else f"; OK below {cal.ok_threshold:.6g}, REVIEW in between"
    print(f"Calibration '{cal.name}' ({preset}{'' if target is None else f' {target}'}): image threshold "
          f"{cal.image_threshold:.6g}{band}; pixel threshold "
          f"{'unset' if cal.pixel_threshold is None else f'{cal.pixel_threshold:.6g}'}; minimum defect area "
          f"{cal.min_defect_area} px")
    if preset == "guaranteed_fpr":
        print(f"  Guarantee: on new good parts from the same process, the false-alarm rate exceeds "
              f"{target:.2%} with probability at most {1 - cal.confidence:.0%} "
              f"(distribution-free, from {cal.data['n_good']} good images).")
    print(f"  TP {c['tp']}  FP {c['fp']}  TN {c['tn']}  FN {c['fn']}   recall {c['recall']:.1%}{ci('recall')}   "
          f"false alarms {c['false_alarm_rate']:.1%}{ci('false_alarm_rate')}   precision {c['precision']:.1%}")
    if cal.ok_threshold is not None and "review_rate" in iv:
        print(f"  sent to REVIEW {iv['review_rate']['estimate']:.1%}{ci('review_rate')}")
    masks = [k for k in ("roi", "ignore") if cal.masks.get(k)]
    if masks:
        print(f"  {' and '.join(masks)} mask stored in the model package")
    for warning in cal.warnings:
        print(f"warning: {warning}")
    print(f"Saved into {Path(args.model) / 'model.json'} as the active calibration.")
    if args.json:
        from workbench.core.files import atomic_write_json

        atomic_write_json(args.json, cal.to_dict())
    return 0


def _expand_images(items: list[str]) -> list[tuple[Path, str]]:
    from workbench.core.workflows import expand_images

    return expand_images(items)


def cmd_export(args: argparse.Namespace) -> int:
    from workbench.core.export import export_onnx
    from workbench.core.files import check_output_dir
    from workbench.core.formats import EXPORTED_PACKAGE
    from workbench.core.methods.package import load_model

    check_output_dir(args.out, EXPORTED_PACKAGE, overwrite=args.overwrite, inputs=[("the model folder", args.model)])
    model = load_model(args.model, device="cpu")
    if not model.exportable:
        raise CliError(f"{model.title} cannot be exported to ONNX: its inference is not a single forward pass.")
    start = time.perf_counter()
    out = export_onnx(model, args.out, overwrite=args.overwrite, inputs=[("the model folder", args.model)],
                      package_dir=args.model)
    from workbench.core.run_record import new_record, save_record

    record = new_record("export", method=model.name, params=model.params, device="cpu",
                        timings={"export": time.perf_counter() - start},
                        model={"source": str(args.model), "out": str(out), "format": args.format})
    save_record(args.model, record)
    save_record(out, record)
    print(f"Exported {model.title} to {out / 'model.onnx'} (metadata in {out / 'model.json'}). "
          f"Score with: workbench predict --model {out} IMAGES --out DIR")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from workbench.core.results_csv import safe_text
    from workbench.core.workflows import load_scorer, predict_images

    scorer = load_scorer(args.model, args.device)  # checks the package first: its errors say most
    policy = _run_policy(args)
    items = _expand_images(args.images)
    threshold = args.threshold if args.threshold is not None else policy.ng_threshold
    inputs = [("the model folder", args.model)] + [("the image folder", i) for i in args.images if Path(i).is_dir()]
    backend = _cluster_backend(args)
    try:
        with progress_bars(not args.quiet) as bars:
            summary = predict_images(args.model, items, args.out, policy=policy, threshold=args.threshold,
                                     overlays=not args.no_overlays, resume=not args.restart,
                                     batch_size=args.batch_size, scorer=scorer, progress=bars,
                                     inputs=inputs, backend=backend).summary
    except KeyboardInterrupt:
        print(f"interrupted: the rows scored so far are in {Path(args.out) / 'scores.csv'}; "
              "run the same command again to resume.", file=sys.stderr)
        raise
    finally:
        if backend is not None and hasattr(backend, "close"):
            backend.close()
    if backend is not None:
        stats = backend.stats
        print(f"Scored on {backend.describe()}: {len(stats.pids)} worker process(es), model loaded "
              f"{stats.total_loads} time(s)" + (f", {stats.resent} batch(es) resent after a worker died"
                                                 if stats.resent else "") + ".")
    for problem in summary.problems:
        print(f"skipped: {safe_text(problem)}", file=sys.stderr)
    thr_text = "no threshold in the model" if threshold is None else f"threshold {threshold:.4g}"
    if policy.ok_threshold is not None and args.threshold is None:
        thr_text += f", OK below {policy.ok_threshold:.4g}; {summary.n_review} REVIEW"
    resumed = f", {summary.resumed} already done earlier" if summary.resumed else ""
    bad = f", {summary.unreadable} unreadable" if summary.unreadable else ""
    failed = f", {summary.failed} failed (decision 'error')" if summary.failed else ""
    repaired = (f"; {summary.repaired} damaged row(s) of the earlier CSV were dropped and scored again"
                if summary.repaired else "")
    print(f"Scored {summary.scored} image(s){resumed}{bad}{failed} ({thr_text}; {summary.n_ng} NG in total)"
          f"{repaired}. Scores: {safe_text(str(summary.csv_path))}")
    if summary.failed:
        print(f"error: {summary.failed} image(s) could not be scored; see the 'error' column of "
              f"{safe_text(str(summary.csv_path))}", file=sys.stderr)
        return EXIT_SOME_IMAGES_FAILED
    return 0


def _cluster_backend(args: argparse.Namespace):
    """The backend for ``predict --cluster`` (None: score in this process, as without the option)."""
    if args.cluster is None:
        return None
    from workbench.core.cluster import make_backend, parse_cluster
    from workbench.core.cluster.worker import spec_for

    spec = parse_cluster(args.cluster)
    if spec.note and not args.quiet:
        print(f"--cluster {args.cluster}: using {spec.note}", file=sys.stderr)
    return make_backend(spec, spec_for(args.model, args.device, 1), args.workers)


def cmd_gui(args: argparse.Namespace) -> int:
    from workbench.gui.logfile import setup_log_file

    setup_log_file()  # before Qt is imported, so a failing start is in the log file too
    try:
        from workbench.gui.app import main as gui_main
    except ImportError:
        logging.getLogger("workbench.gui").exception("the desktop application cannot start")
        raise

    return int(gui_main([args.workspace] if args.workspace else []))


def cmd_demo(args: argparse.Namespace) -> int:
    if args.live:  # the station view replaying the sample images with the shipped sample model (no torch)
        from workbench.gui.live_window import run_demo

        return run_demo(args.category or "washer", fps=args.fps, log_root=args.out)
    from workbench.core.data import list_categories, load_dataset
    from workbench.core.evaluation import evaluate_model
    from workbench.core.methods import DEFAULT_METHOD, METHODS
    from workbench.core.methods.package import save_model
    from workbench.core.training import train_model

    data = Path(args.data) if args.data else sample_data_dir()
    if not data.exists():
        raise CliError(f"Sample data not found at {data}. Pass --data DIR.")
    methods = list(METHODS) if args.methods == "all" else [m.strip() for m in (args.methods or DEFAULT_METHOD).split(",")]
    categories = [args.category] if args.category else list_categories(data)
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="workbench-demo-"))
    print(f"Demo on {data} ({', '.join(categories)}); models saved under {out_root}")
    rows = []
    with progress_bars(not args.quiet) as bars:
        for category in categories:
            dataset = load_dataset(data, category=category)
            for method in methods:
                result = train_model(dataset, method, device=args.device, progress=bars)
                save_model(result.model, out_root / f"{category}-{method}", overwrite=True,
                           inputs=[("the dataset", data)])
                ev = evaluate_model(result.model, dataset, progress=bars)
                rows.append((category, method, ev.image_auroc, ev.pixel_auroc, ev.aupro, result.fit_seconds,
                             ev.ms_per_image))
                bars.close()
                print(f"  {category:<14} {method:<12} image AUROC {_fmt(ev.image_auroc)}  "
                      f"AUPRO {_fmt(ev.aupro)}", file=sys.stderr)
    print()
    header = f"{'category':<14} {'method':<12} {'img AUROC':>9} {'pix AUROC':>9} {'AUPRO':>7} {'fit s':>7} {'ms/img':>7}"
    print(header)
    print("-" * len(header))
    for cat, method, img, pix, pro, fit_s, ms in rows:
        print(f"{cat:<14} {method:<12} {_fmt(img):>9} {_fmt(pix):>9} {_fmt(pro):>7} {fit_s:>7.1f} {ms:>7.1f}")
    if len(rows) > 1:
        print("-" * len(header))
        mean = lambda i: float(np.mean([r[i] for r in rows if r[i] is not None]))  # noqa: E731
        print(f"{'mean':<14} {'':<12} {_fmt(mean(2)):>9} {_fmt(mean(3)):>9} {_fmt(mean(4)):>7}")
    return 0


def sample_data_dir() -> Path:
    """The shipped sample dataset (package data: works in editable, wheel and frozen installs)."""
    from workbench.package_data import sample_data_dir as shipped

    return shipped()


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Anomaly Inspection Workbench")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from workbench.cli_commands.args import add_common_args as common
    from workbench.cli_commands.args import add_data_args as data_args
    from workbench.cli_commands.args import add_cluster_args as cluster_args
    from workbench.cli_commands.args import add_mask_args as mask_args

    p = sub.add_parser("gui", help="open the desktop application (the default command)")
    p.add_argument("workspace", nargs="?", help="workspace folder to open")
    p.set_defaults(func=cmd_gui)

    p = sub.add_parser("methods", help="list methods and their parameters")
    p.add_argument("-v", "--verbose", action="store_true", help="show every parameter")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("train", help="train a model on good images")
    data_args(p, required=False)
    p.add_argument("--record", metavar="R.json", help="re-run this run record (a model's run_records/NNNN-train.json): "
                                                      "its dataset, method, parameters, seed and device")
    p.add_argument("--method", default="patchcore", help="method name (see 'workbench methods')")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="hyperparameter, repeatable")
    p.add_argument("--out", required=True, help="model folder to write (new or empty)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out when it already holds a model package (never any other folder)")
    from workbench.cli_commands.audit import add_training_set_args

    add_training_set_args(p)  # --workspace (skip excluded images), --tile, --tile-overlap
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a model on a dataset's test split")
    p.add_argument("--model", required=True, help="model folder")
    data_args(p)
    p.add_argument("--json", help="also write the metrics to this JSON file")
    mask_args(p, "for this run")
    common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="score images; writes scores.csv and heat-map overlays")
    p.add_argument("--model", required=True, help="model folder, or an exported ONNX folder (runs on onnxruntime)")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--threshold", type=finite_float, help="image threshold (default: the model's)")
    p.add_argument("--no-overlays", action="store_true", help="write only scores.csv")
    p.add_argument("--restart", action="store_true",
                   help="start scores.csv afresh (default: resume, skipping images already in it)")
    p.add_argument("--batch-size", type=count(1), help="images per batch (default: the model's)")
    mask_args(p, "for this run")
    cluster_args(p)
    common(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("calibrate", help="choose and save OK/NG thresholds on labelled data")
    p.add_argument("--model", required=True, help="model folder")
    data_args(p)
    goal = p.add_mutually_exclusive_group()
    goal.add_argument("--target-fpr", type=fraction,
                      help="lowest threshold with false-alarm rate <= this on good images; with --confidence, "
                           "a threshold whose false-alarm rate on NEW good parts is <= this with that confidence")
    goal.add_argument("--target-recall", type=fraction, help="highest threshold with recall >= this on defects")
    goal.add_argument("--max-f1", action="store_true", help="threshold with the best F1 (default)")
    goal.add_argument("--threshold", type=finite_float, help="a manual threshold in raw score units")
    p.add_argument("--pixel", default="f1", choices=["f1", "good_max", "none"],
                   help="pixel threshold for defect outlines: best pixel F1, above every good pixel, or none")
    p.add_argument("--confidence", type=fraction,
                   help="with --target-fpr: guarantee the rate with this confidence (e.g. 0.95); refuses when "
                        "there are too few good images and says how many are needed")
    band = p.add_mutually_exclusive_group()
    band.add_argument("--ok-threshold", type=finite_float,
                      help="OK below this raw score; scores between it and the NG threshold go to REVIEW")
    band.add_argument("--ok-recall", type=fraction,
                      help="highest OK threshold that still sends this share of defective parts to REVIEW or NG")
    p.add_argument("--min-area", type=count(0), default=0,
                   help="smallest defect region (pixels of the original image) to outline and count")
    p.add_argument("--normalization", default="raw", choices=["raw", "minmax", "quantile"],
                   help="score scale shown to users (thresholds are stored in raw units too)")
    p.add_argument("--name", default="default", help="calibration name (several can be kept)")
    p.add_argument("--json", help="also write the calibration to this JSON file")
    mask_args(p, "stored in the model")
    common(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("export", help="export a model to ONNX (+ JSON metadata) for deployment")
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format")
    p.add_argument("--out", required=True, help="folder to write model.onnx and model.json to (new or empty)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out when it already holds an exported model (never any other folder)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="train and evaluate on the shipped sample data and print a table")
    p.add_argument("--data", help="dataset root (default: the shipped sample_data)")
    p.add_argument("--category", help="only this category")
    p.add_argument("--methods", help="comma-separated method names or 'all' (default: patchcore)")
    p.add_argument("--out", help="where to keep the trained models (default: a temporary folder)")
    p.add_argument("--live", action="store_true",
                   help="open the live station view replaying the sample test images with the shipped sample model "
                        "(--category picks the sample, default washer; --out keeps the session logs)")
    p.add_argument("--fps", type=finite_float, default=2.0, help="--live: replay rate in images per second (default 2)")
    common(p)
    p.set_defaults(func=cmd_demo)

    from workbench.cli_commands import register_all

    register_all(sub)  # commands that live in workbench/cli_commands/
    return parser


def _version() -> str:
    import workbench

    return f"workbench {workbench.__version__}"


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    """Errors reported as bad input (exit 2). Evaluated when an error arrives, so that a
    torch-free command (predict with an exported package) never imports the backbones (torch)
    just to name their error class: it can only be raised once they were imported."""
    errors: list[type[BaseException]] = [CliError, ValueError, FileNotFoundError, NotADirectoryError,
                                         PermissionError]
    weights = sys.modules.get("workbench.core.backbones.weights")
    if weights is not None:
        errors.append(weights.BackboneError)
    cluster = sys.modules.get("workbench.core.cluster.backends")
    if cluster is not None:
        errors.append(cluster.ClusterError)
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _PipeSafe(sys.stdout), _PipeSafe(sys.stderr)
    try:
        return _main(argv)
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = streams


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):  # bare `workbench` opens the desktop application
        args = parser.parse_args(["gui"])
    from workbench.core.jobs import Cancelled

    try:
        return int(args.func(args))
    except _bad_input_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # e.g. disk full while saving: the previous files are kept
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}. Free disk space or check the drive, then try again "
              "(a model being saved keeps its previous version).", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, Cancelled):
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
