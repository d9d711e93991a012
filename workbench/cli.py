"""The ``workbench`` command: thin wrappers over :mod:`workbench.core`.

Every sub-command reports progress with tqdm, prints specific errors (which file, what is
wrong, what to do) and exits non-zero on bad input: 2 for bad input, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

EXIT_BAD_INPUT = 2
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
    from workbench.core.methods.package import save_model
    from workbench.core.training import train_model

    dataset = _load_dataset(args)
    print(dataset.report.summary())
    with progress_bars(not args.quiet) as bars:
        result = train_model(dataset, args.method, _parse_params(args.param), device=args.device,
                             progress=bars)
    out = save_model(result.model, args.out)
    print(f"Trained {result.model.title} on {result.n_train} good images in {result.fit_seconds:.1f} s "
          f"({result.model.device}); model saved to {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from workbench.core.evaluation import evaluate_model
    from workbench.core.methods.package import load_model

    model = load_model(args.model, device=args.device)
    dataset = _load_dataset(args)
    with progress_bars(not args.quiet) as bars:
        result = evaluate_model(model, dataset, progress=bars)
    metrics = {"model": str(args.model), "method": model.name, "dataset": dataset.name, **result.metrics()}
    print(f"{model.title} on {dataset.name}: image AUROC {_fmt(result.image_auroc)}, pixel AUROC "
          f"{_fmt(result.pixel_auroc)}, AUPRO {_fmt(result.aupro)}, F1-max {_fmt(result.f1_max)} at "
          f"threshold {_fmt(result.f1_threshold, 4)}; {result.ms_per_image:.1f} ms/image "
          f"({result.n_good} good, {result.n_defect} defective test images)")
    if result.n_without_mask:
        print(f"note: {result.n_without_mask} defective image(s) have no mask and are left out of pixel metrics")
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
        preset, target = "false_alarm", args.target_fpr
    elif args.target_recall is not None:
        preset, target = "recall", args.target_recall
    elif args.threshold is not None:
        preset, target = "manual", args.threshold
    else:
        preset, target = "max_f1", None
    model = load_model(args.model, device=args.device)
    dataset = _load_dataset(args)
    with progress_bars(not args.quiet) as bars:
        evaluation = evaluate_model(model, dataset, progress=bars)
    cal = calibrate(evaluation, preset, target, name=args.name, pixel_preset=args.pixel,
                    min_defect_area=args.min_area, normalization=args.normalization,
                    image_stats=model.metadata.get("score_stats", {}).get("image"),
                    data={"dataset": dataset.name, "root": str(dataset.root), "split": "test"})
    save_calibration(args.model, cal)
    c, iv = cal.confusion, cal.intervals
    def ci(key: str) -> str:
        return f" (95% CI {iv[key]['low']:.1%}-{iv[key]['high']:.1%})" if key in iv else ""
    print(f"Calibration '{cal.name}' ({preset}{'' if target is None else f' {target}'}): image threshold "
          f"{cal.image_threshold:.6g}; pixel threshold "
          f"{'unset' if cal.pixel_threshold is None else f'{cal.pixel_threshold:.6g}'}")
    print(f"  TP {c['tp']}  FP {c['fp']}  TN {c['tn']}  FN {c['fn']}   recall {c['recall']:.1%}{ci('recall')}   "
          f"false alarms {c['false_alarm_rate']:.1%}{ci('false_alarm_rate')}   precision {c['precision']:.1%}")
    for warning in cal.warnings:
        print(f"warning: {warning}")
    print(f"Saved into {Path(args.model) / 'model.json'} as the active calibration.")
    if args.json:
        from workbench.core.files import atomic_write_json

        atomic_write_json(args.json, cal.to_dict())
    return 0


def _expand_images(items: list[str]) -> list[tuple[Path, str]]:
    """Image files named on the command line or found in folders, each with a unique output
    stem (the path inside its folder, '/' -> '__'), so test/good/000.png and
    test/hole/000.png do not overwrite each other's overlays."""
    from workbench.core.data.io import IMAGE_SUFFIXES

    found: list[tuple[Path, str]] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise CliError(f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in folder {path}")
            found.extend((p, p.relative_to(path).with_suffix("").as_posix().replace("/", "__")) for p in files)
        elif path.is_file():
            found.append((path, path.stem))
        else:
            raise CliError(f"Image or folder not found: {path}")
    # Same names (a.png next to a.jpg, or a.png in two folders given): make each output name
    # unique, so that no overlay overwrites another.
    clashes = Counter(stem for _, stem in found)
    unique: list[tuple[Path, str]] = []
    used: set[str] = set()
    for p, stem in found:
        name = base = stem if clashes[stem] == 1 else f"{stem}_{p.suffix.lstrip('.').lower()}"
        n = 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        unique.append((p, name))
    return unique


def _load_scorer(path: str, device: str | None):
    """A training package (torch) or an exported folder (onnxruntime), by what the folder holds."""
    from workbench.core.export import ONNX_FILE, OnnxInferencer
    from workbench.core.methods.package import load_model

    if (Path(path) / ONNX_FILE).is_file():
        return OnnxInferencer(path)
    return load_model(path, device=device)


def cmd_export(args: argparse.Namespace) -> int:
    from workbench.core.export import export_onnx
    from workbench.core.methods.package import load_model

    model = load_model(args.model, device="cpu")
    if not model.exportable:
        raise CliError(f"{model.title} cannot be exported to ONNX: its inference is not a single forward pass.")
    out = export_onnx(model, args.out)
    print(f"Exported {model.title} to {out / 'model.onnx'} (metadata in {out / 'model.json'}). "
          f"Score with: workbench predict --model {out} IMAGES --out DIR")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from workbench.core.batch_predict import model_fingerprint, predict_folder

    model = _load_scorer(args.model, args.device)
    items = _expand_images(args.images)
    threshold = args.threshold
    if threshold is None:
        threshold = model.metadata.get("thresholds", {}).get("image", {}).get("value")
    try:
        with progress_bars(not args.quiet) as bars:
            summary = predict_folder(model, items, args.out, fingerprint=model_fingerprint(args.model),
                                     threshold=threshold, overlays=not args.no_overlays,
                                     resume=not args.restart, batch_size=args.batch_size, progress=bars)
    except KeyboardInterrupt:
        print(f"interrupted: the rows scored so far are in {Path(args.out) / 'scores.csv'}; "
              "run the same command again to resume.", file=sys.stderr)
        raise
    for problem in summary.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    thr_text = "no threshold in the model" if threshold is None else f"threshold {threshold:.4g}"
    resumed = f", {summary.resumed} already done earlier" if summary.resumed else ""
    bad = f", {summary.unreadable} unreadable" if summary.unreadable else ""
    print(f"Scored {summary.scored} image(s){resumed}{bad} ({thr_text}; {summary.n_ng} NG in total). "
          f"Scores: {summary.csv_path}")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    from workbench.gui.app import main as gui_main

    return int(gui_main([args.workspace] if args.workspace else []))


def cmd_demo(args: argparse.Namespace) -> int:
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
                save_model(result.model, out_root / f"{category}-{method}")
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
    """The shipped sample dataset (repository checkout)."""
    return Path(__file__).resolve().parent.parent / "sample_data"


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Anomaly Inspection Workbench")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", required=True, help="dataset folder (MVTec, VisA or plain folders)")
        p.add_argument("--category", help="category inside a multi-category dataset (e.g. 'fabric')")
        p.add_argument("--layout", default="auto", choices=["auto", "mvtec", "visa", "folder"],
                       help="dataset layout (default: detect)")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", help="'cpu' or 'cuda' (default: CUDA when available)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("gui", help="open the desktop application (the default command)")
    p.add_argument("workspace", nargs="?", help="workspace folder to open")
    p.set_defaults(func=cmd_gui)

    p = sub.add_parser("methods", help="list methods and their parameters")
    p.add_argument("-v", "--verbose", action="store_true", help="show every parameter")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("train", help="train a model on good images")
    data_args(p)
    p.add_argument("--method", default="patchcore", help="method name (see 'workbench methods')")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="hyperparameter, repeatable")
    p.add_argument("--out", required=True, help="model folder to write")
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a model on a dataset's test split")
    p.add_argument("--model", required=True, help="model folder")
    data_args(p)
    p.add_argument("--json", help="also write the metrics to this JSON file")
    common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="score images; writes scores.csv and heat-map overlays")
    p.add_argument("--model", required=True, help="model folder, or an exported ONNX folder (runs on onnxruntime)")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--threshold", type=float, help="image threshold (default: the model's)")
    p.add_argument("--no-overlays", action="store_true", help="write only scores.csv")
    p.add_argument("--restart", action="store_true",
                   help="start scores.csv afresh (default: resume, skipping images already in it)")
    p.add_argument("--batch-size", type=int, help="images per batch (default: the model's)")
    common(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("calibrate", help="choose and save OK/NG thresholds on labelled data")
    p.add_argument("--model", required=True, help="model folder")
    data_args(p)
    goal = p.add_mutually_exclusive_group()
    goal.add_argument("--target-fpr", type=float, help="lowest threshold with false-alarm rate <= this on good images")
    goal.add_argument("--target-recall", type=float, help="highest threshold with recall >= this on defects")
    goal.add_argument("--max-f1", action="store_true", help="threshold with the best F1 (default)")
    goal.add_argument("--threshold", type=float, help="a manual threshold in raw score units")
    p.add_argument("--pixel", default="f1", choices=["f1", "good_max", "none"],
                   help="pixel threshold for defect outlines: best pixel F1, above every good pixel, or none")
    p.add_argument("--min-area", type=int, default=0, help="smallest defect region in pixels to outline")
    p.add_argument("--normalization", default="raw", choices=["raw", "minmax", "quantile"],
                   help="score scale shown to users (thresholds are stored in raw units too)")
    p.add_argument("--name", default="default", help="calibration name (several can be kept)")
    p.add_argument("--json", help="also write the calibration to this JSON file")
    common(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("export", help="export a model to ONNX (+ JSON metadata) for deployment")
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format")
    p.add_argument("--out", required=True, help="folder to write model.onnx and model.json to")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="train and evaluate on the shipped sample data and print a table")
    p.add_argument("--data", help="dataset root (default: the shipped sample_data)")
    p.add_argument("--category", help="only this category")
    p.add_argument("--methods", help="comma-separated method names or 'all' (default: patchcore)")
    p.add_argument("--out", help="where to keep the trained models (default: a temporary folder)")
    common(p)
    p.set_defaults(func=cmd_demo)
    return parser


def _version() -> str:
    import workbench

    return f"workbench {workbench.__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):  # bare `workbench` opens the desktop application
        args = parser.parse_args(["gui"])
    from workbench.core.backbones import BackboneError
    from workbench.core.jobs import Cancelled

    try:
        return int(args.func(args))
    except (CliError, ValueError, BackboneError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
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
