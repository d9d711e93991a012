"""``workbench inspect``: the live scoring loop without a window, for a PC next to the line.

    workbench inspect --model M (--watch DIR | --camera INDEX_OR_URL | --replay DIR [--fps F])
                      --log OUT.csv [--copy-ng DIR] [--max-images N | --duration S]

Each decision is printed (unless ``-q``) and appended to the log as it is made; Ctrl+C (or
SIGTERM from a service manager) ends the session cleanly: the last frame is finished, the
summary is written beside the log and printed, and the exit code is 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from workbench.cli import count, finite_float

    p = sub.add_parser("inspect", help="score images as they arrive (watched folder, camera, replay) and log "
                                       "every decision; Ctrl+C ends with a summary")
    p.add_argument("--model", required=True,
                   help="exported ONNX folder (torch-free, fastest on a line PC) or a training package")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--watch", metavar="DIR", help="score each new image file once it is completely written")
    src.add_argument("--camera", metavar="INDEX_OR_URL", help="OpenCV camera: device index (0) or stream URL")
    src.add_argument("--replay", metavar="DIR", help="replay the images of a folder (sub-folders included)")
    p.add_argument("--fps", type=finite_float,
                   help="--replay: frames per second (default: as fast as scored, none dropped); "
                        "--camera: frame-rate cap")
    p.add_argument("--loop", action="store_true", help="--replay: start over at the end")
    p.add_argument("--existing", action="store_true", help="--watch: also score the images already in the folder")
    p.add_argument("--settle", type=finite_float, default=0.5, metavar="S",
                   help="--watch: a file counts as complete when its size has not changed for S seconds "
                        "(default 0.5; a file renamed inside the folder, e.g. from NAME.tmp, is taken at once)")
    p.add_argument("--log", required=True, metavar="OUT.csv",
                   help="CSV log, one row per image (appended to when it exists); summary in OUT.csv.summary.json")
    p.add_argument("--copy-ng", metavar="DIR", help="copy every NG and REVIEW image into this folder")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--max-images", type=count(1), metavar="N", help="stop after N images (scored, unreadable or failed; dropped ones do not count)")
    stop.add_argument("--duration", type=finite_float, metavar="S", help="stop after S seconds")
    p.add_argument("--queue", type=count(1), default=2, metavar="N",
                   help="frames waiting for the scorer at most (default 2); older ones are dropped and counted")
    p.add_argument("--device", help="'cpu' or 'cuda' (training packages; default: CUDA when available)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only notices and the summary")
    p.set_defaults(func=cmd_inspect)


def make_source(args: argparse.Namespace):
    from workbench.core.live import CameraSource, ReplayFolder, WatchedFolder

    if args.fps is not None and args.fps <= 0:
        raise ValueError(f"--fps must be above 0, got {args.fps}.")
    if args.watch:
        return WatchedFolder(args.watch, settle_s=max(0.0, args.settle), existing=args.existing)
    if args.camera is not None:
        return CameraSource(args.camera, fps=args.fps)
    return ReplayFolder(args.replay, fps=args.fps, loop=args.loop)


def format_result(result) -> str:
    score = "" if result.score is None else f"{result.score:9.4g}"
    what = result.verdict or "(no threshold)"
    tail = f"  {result.error}" if result.error else ""
    return f"{result.index:6d}  {what:<10} {score:>9}  {result.latency_ms:7.1f} ms  {result.name}{tail}"


def format_summary(summary: dict) -> str:
    counts = summary["counts"]
    decided = sum(counts.get(k, 0) for k in ("OK", "REVIEW", "NG"))
    yld = "n/a" if summary["yield"] is None else f"{summary['yield']:.1%}"
    lat = summary["latency_ms"]
    lat_text = "n/a" if lat["median"] is None else f"median {lat['median']:.1f} ms, p95 {lat['p95']:.1f} ms"
    others = ", ".join(f"{counts[k]} {k}" for k in sorted(counts) if k not in ("OK", "REVIEW", "NG"))
    lines = [f"Session ended ({summary['ended_by']}): {summary['images']} image(s) in {summary['seconds']:.1f} s "
             f"({summary['fps']:.2f} per second)",
             f"  OK {counts.get('OK', 0)}   REVIEW {counts.get('REVIEW', 0)}   NG {counts.get('NG', 0)}   "
             f"yield {yld} of {decided} decided" + (f"   ({others})" if others else ""),
             f"  dropped {summary['dropped']} frame(s) (scorer busy)   latency {lat_text}"]
    if summary.get("copies_to"):
        lines.append(f"  {summary['copies']} NG/REVIEW image(s) copied to {summary['copies_to']}")
    if summary.get("log"):
        lines.append(f"  log {summary['log']}   summary {summary.get('summary_file', '')}")
    return "\n".join(lines)


def cmd_inspect(args: argparse.Namespace) -> int:
    from workbench.cli import EXIT_BAD_INPUT, CliError
    from workbench.core.live import LiveInspection, LiveLog, load_live_scorer

    model_dir = Path(args.model)
    if not model_dir.is_dir():
        raise CliError(f"Model folder not found: {model_dir}")
    if args.duration is not None and args.duration <= 0:
        raise CliError(f"--duration must be above 0 seconds, got {args.duration}.")
    source = make_source(args)
    scorer = load_live_scorer(model_dir, args.device)
    quiet = args.quiet

    def on_result(result) -> None:
        if not quiet:
            print(format_result(result), flush=True)

    def on_notice(text: str) -> None:
        print(f"notice: {text}", file=sys.stderr, flush=True)

    with LiveLog(args.log) as log:
        session = LiveInspection(scorer, source, log=log, copy_dir=args.copy_ng, queue_size=args.queue,
                                 max_images=args.max_images, duration_s=args.duration, on_result=on_result,
                                 on_notice=on_notice, model_name=str(model_dir))
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda *_: session.stop())
        try:
            print(f"Inspecting: {source.describe()}; model {model_dir}; log {args.log}. Ctrl+C ends the session.",
                  file=sys.stderr, flush=True)
            summary = session.run()
        finally:
            signal.signal(signal.SIGTERM, previous)
    print(format_summary(summary), flush=True)
    if summary.get("source_error") and summary["images"] == 0:
        print(f"error: {summary['source_error']}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0
