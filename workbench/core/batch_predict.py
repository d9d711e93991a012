"""Score a folder of any size: stream batches, append to a CSV, resume after an interruption.

Line-side folders hold tens of thousands of images, so nothing here keeps more than two
batches in memory: images are read by a small thread pool one batch ahead of the model
(OpenCV releases the GIL while decoding), each scored batch writes its overlays, then its
CSV rows are appended and flushed to disk. A run that is killed or cancelled leaves a CSV
of complete rows (a torn last line is cut off on resume); running the same command again
skips every image already in the CSV. A small ``predict_run.json`` beside the CSV records
which model and inspection policy wrote it, so a resume never mixes decisions of two models.

Each row's decision, region count and defect area come from the model's
:class:`~workbench.core.calibration.policy.InspectionPolicy` (OK / REVIEW / NG band, minimum
defect area, ROI and ignore masks), the same rule the GUI and ``evaluate`` use.
"""

from __future__ import annotations

import errno
import hashlib
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from workbench.core.data import ImageReadError, read_image
from workbench.core.files import atomic_write_json, check_output_dir
from workbench.core.formats import PREDICT_RUN, PredictRunError, PredictRunJson, read_json_file, validate
from workbench.core.calibration.policy import InspectionPolicy, MapScale
from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.results_csv import CSV_FIELDS, ResultsCsv, display_path, read_valid_rows, safe_text
from workbench.core.visualize import annotate, draw_outline, heat_overlay

CSV_FILE = "scores.csv"
RUN_FILE = "predict_run.json"
MAX_NAME_BYTES = 200  # overlay file names are shortened with a hash beyond this (most file systems allow 255)
MASK_RESIZED_NOTE = "ROI/ignore mask resized to this image"

__all__ = ["CSV_FIELDS", "BatchBackend", "PredictRunError", "PredictSummary", "ResumeMismatchError", "model_fingerprint",
           "overlay_name", "predict_folder", "read_rows", "score_paths"]


class Scorer(Protocol):
    """What the streamer needs: a torch ``AnomalyModel`` or an ``OnnxInferencer``."""

    metadata: dict[str, Any]
    params: dict[str, Any]

    def predict(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...


class ResumeMismatchError(PredictRunError):
    """The output folder holds a run of another model or threshold."""


@dataclass(frozen=True)
class PredictSummary:
    csv_path: Path
    total: int          # images asked for
    scored: int         # scored in this call
    resumed: int        # already in the CSV from an earlier, interrupted call
    unreadable: int     # recorded as 'unreadable' in this call
    n_ng: int           # NG decisions in the whole CSV
    problems: tuple[str, ...] = ()  # why each unreadable or failed image of this call could not be scored
    failed: int = 0     # recorded as 'error' in this call (non-finite score, overlay not writable)
    repaired: int = 0   # damaged rows dropped from the CSV on resume (their images were scored again)
    n_review: int = 0   # REVIEW decisions in the whole CSV


def model_fingerprint(model_dir: str | Path) -> str:
    """SHA-256 of the folder's model.json: it changes with every retrain, calibration or export."""
    return hashlib.sha256((Path(model_dir) / "model.json").read_bytes()).hexdigest()


def predict_folder(scorer: Scorer, items: Sequence[tuple[Path, str]], out_dir: str | Path, *,
                   fingerprint: str, threshold: float | None = None, policy: InspectionPolicy | None = None,
                   overlays: bool = True, resume: bool = True, batch_size: int | None = None,
                   progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                   inputs: Sequence[tuple[str, str | Path]] = (),
                   backend: BatchBackend | None = None) -> PredictSummary:
    """Score ``items`` (path, unique output stem) into ``out_dir/scores.csv`` (+ overlay PNGs).

    ``policy`` decides each image (default: the scorer's own, from its metadata and, for masks,
    its ``directory``); ``threshold`` replaces its NG threshold (dropping a band that would lie
    above it). With ``resume`` (the default) images already in an existing CSV of the same model
    and policy are skipped; with ``resume=False`` the CSV is started afresh. ``out_dir`` must be
    new, empty or an earlier predict run, and none of ``inputs`` (the model, image folders).
    Raises ``Cancelled`` between batches when ``cancel`` is set; every finished row is on disk
    then. ``backend`` scores the batches in other processes or machines (``core/cluster``); the
    CSV, resume and overlays are the same as in-process. A second call on the same ``out_dir`` while this one runs raises PredictRunError.
    """
    if threshold is not None and not math.isfinite(threshold):
        raise ValueError(f"The threshold must be a finite number, not {threshold}.")
    out_dir = Path(out_dir)
    check_output_dir(out_dir, PREDICT_RUN, overwrite=True, inputs=inputs)
    out_dir.mkdir(parents=True, exist_ok=True)
    if policy is None:
        policy = InspectionPolicy.from_metadata(scorer.metadata, getattr(scorer, "directory", None))
    if threshold is not None:
        ok = policy.ok_threshold
        policy = policy.replace(ng_threshold=threshold, ok_threshold=ok if ok is not None and ok <= threshold else None,
                                source="--threshold")
    run = {"model_fingerprint": fingerprint, "threshold": policy.ng_threshold, "policy": policy.fingerprint(),
           "overlays": overlays}
    with ResultsCsv(out_dir / CSV_FILE) as results:
        _check_run(out_dir / RUN_FILE, results, run, resume)
        fresh = not (resume and results.has_rows())
        done = results.open(resume)
        if fresh:  # a new CSV: record who writes it (replacing the record of an emptied run)
            atomic_write_json(out_dir / RUN_FILE, run)
        todo = [(p, stem) for p, stem in items if display_path(p) not in done]
        resumed = len(items) - len(todo)
        counts = _score_all(scorer, todo, results, out_dir if overlays else None, policy, batch_size,
                            make_reporter(progress, "predict", len(items)), resumed, cancel, backend)
        decisions = [row["decision"] for row in results.rows()]
    scored, unreadable, failed, problems = counts
    return PredictSummary(results.path, len(items), scored, resumed, unreadable, decisions.count("NG"),
                          tuple(problems), failed, results.repaired, decisions.count("REVIEW"))


def _check_run(run_path: Path, results: ResultsCsv, run: dict[str, Any], resume: bool) -> None:
    """Refuse to resume a CSV written by another model, policy or overlay setting."""
    if not (resume and results.has_rows()):
        return
    previous = None
    if run_path.is_file():
        data = read_json_file(run_path, PredictRunError, "Choose another output folder, or start over "
                              "(the CLI's --restart).")
        previous = validate(PredictRunJson, data, run_path, PredictRunError,
                            "Choose another output folder, or start over (the CLI's --restart).").model_dump()
        previous = {k: previous.get(k) for k in run}
        if previous["policy"] is None:  # written before inspection policies: other columns and decisions
            raise PredictRunError(f"{results.path} has the columns of another version or tool (written before "
                                  "inspection policies). Choose another output folder, or start over (the CLI's "
                                  "--restart).")
    if previous != run:
        what = "an unknown run" if previous is None else (
            "another model" if previous.get("model_fingerprint") != run["model_fingerprint"]
            else "another threshold, inspection policy or overlay setting")
        raise ResumeMismatchError(
            f"{results.path} was written by {what}. Choose another output folder, or start over "
            "(the CLI's --restart) to replace it.")


def _score_all(scorer: Scorer, todo: Sequence[tuple[Path, str]], results: ResultsCsv, overlay_dir: Path | None,
               policy: InspectionPolicy, batch_size: int | None, report, resumed: int,
               cancel: CancelToken | None, backend: "BatchBackend | None" = None) -> tuple[int, int, int, list[str]]:
    batch = max(1, int(batch_size or scorer.params.get("batch_size", 8)))
    report(resumed, f"{resumed} already scored" if resumed else "")
    scored = unreadable = failed = 0
    problems: list[str] = []
    batches = [list(todo[i:i + batch]) for i in range(0, len(todo), batch)]
    if backend is None:
        scale = policy.map_scale() if policy.pixel_stats else None
        scored_batches = _score_here(scorer, todo, batch, policy, scale, overlay_dir, cancel)
    else:  # other processes or machines score the batches; rows come back in batch order
        scored_batches = backend.score_batches(batches, policy, overlay_dir, cancel)
    for rows in scored_batches:
        for row in rows:
            if row["decision"] in ("unreadable", "error"):
                problems.append(row["error"])
        # overlays first, rows last: a row on disk means that image is completely done
        results.append(rows)
        n_unreadable = sum(r["decision"] == "unreadable" for r in rows)
        scored += len(rows) - n_unreadable
        unreadable += n_unreadable
        failed += sum(r["decision"] == "error" for r in rows)
        report(resumed + scored + unreadable)
    return scored - failed, unreadable, failed, problems


def _score_here(scorer: Scorer, todo: Sequence[tuple[Path, str]], batch: int, policy: InspectionPolicy,
                scale: MapScale | None, overlay_dir: Path | None,
                cancel: CancelToken | None) -> Iterator[list[dict[str, Any]]]:
    """In-process scoring, reading one batch ahead; the cancel is checked before each batch."""
    for loaded in _prefetched_batches(todo, batch):
        if cancel is not None:
            cancel.raise_if_cancelled()
        yield score_loaded_batch(scorer, loaded, policy, scale, overlay_dir)


class BatchBackend(Protocol):
    """Scores batches somewhere else (a local process pool, a Ray cluster) and yields each
    batch's rows in the order the batches were given, whatever order they finish in."""

    def score_batches(self, batches: Sequence[list[tuple[Path, str]]], policy: InspectionPolicy,
                      overlay_dir: Path | None, cancel: CancelToken | None) -> Iterator[list[dict[str, Any]]]: ...


def score_paths(scorer: Scorer, items: Sequence[tuple[Path, str]], policy: InspectionPolicy,
                overlay_dir: Path | None) -> list[dict[str, Any]]:
    """Read and score one batch of (path, stem): what a remote worker runs. The same rows as the
    in-process streamer gives for the same batch (same batch, same heat-map scale)."""
    scale = policy.map_scale() if policy.pixel_stats else None
    loaded = [(item, _read_one(item[0])) for item in items]
    return score_loaded_batch(scorer, loaded, policy, scale, overlay_dir)


def score_loaded_batch(scorer: Scorer, loaded: Sequence[tuple[tuple[Path, str], np.ndarray | str]],
                       policy: InspectionPolicy, scale: MapScale | None,
                       overlay_dir: Path | None) -> list[dict[str, Any]]:
    """CSV rows (and overlays) for one batch of (item, image or the reason it is unreadable)."""
    readable = [(item, image) for item, image in loaded if isinstance(image, np.ndarray)]
    results_by_path: dict[Path, dict[str, Any]] = {}
    if readable:
        scores, maps = scorer.predict([image for _, image in readable])
        scale_b = scale or policy.map_scale(_finite_maps(maps))
        # no good-image statistics: outline from this batch's map scale, as the heat map shows
        policy_b = policy if policy.outline_threshold is not None else policy.replace(
            pixel_threshold=scale_b.threshold)
        for ((path, stem), image), score, amap in zip(readable, scores, maps):
            results_by_path[path] = _score_row(path, stem, image, float(score), amap, policy_b, scale_b,
                                               overlay_dir)
    return [results_by_path.get(path) or {"path": display_path(path), "decision": "unreadable", "error": image}
            for (path, _), image in loaded]


def _finite_maps(maps: np.ndarray) -> np.ndarray:
    """Maps with NaN/inf left out, for the fallback heat-map scale."""
    finite = maps[np.isfinite(maps)]
    return finite if finite.size else np.zeros(1, np.float32)


def overlay_name(stem: str) -> str:
    """The overlay's file name: the stem, shortened with a hash when the file system would refuse it."""
    name = f"{stem}_overlay.png"
    if len(name.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(stem.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    head = stem.encode("utf-8", "surrogateescape")[:MAX_NAME_BYTES - 40].decode("utf-8", "ignore")
    return f"{head}-{digest}_overlay.png"


def _error_row(path: Path, score: float, reason: str) -> dict[str, Any]:
    return {"path": display_path(path), "score": "" if not math.isfinite(score) else f"{score:.6g}",
            "decision": "error", "error": f"{display_path(path)}: {reason}"}


def _score_row(path: Path, stem: str, image: np.ndarray, score: float, amap: np.ndarray,
               policy: InspectionPolicy, scale: MapScale, overlay_dir: Path | None) -> dict[str, Any]:
    decision = policy.decide(score, amap, image.shape[:2])
    if decision.verdict == "error":  # the policy's invariant: a non-finite score is never OK
        return _error_row(path, score, f"the model gave a non-finite score ({score}); check the model "
                          "(retrain or re-export it) and the image")
    if overlay_dir is not None:
        vis = heat_overlay(image, scale.normalize(np.nan_to_num(amap, nan=scale.threshold)), alpha=0.45)
        if decision.verdict != "OK":
            vis = draw_outline(vis, decision.region)
        vis = annotate(vis, f"{decision.score:.4g} {decision.verdict or 'no threshold'}", decision.verdict)
        ok, png = cv2.imencode(".png", vis[:, :, ::-1])
        if not ok:
            raise OSError(f"Could not encode the overlay of {display_path(path)}")
        try:
            png.tofile(overlay_dir / overlay_name(stem))  # tofile: non-ASCII paths work
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise  # the disk, not this image: stop, the rows so far are kept
            return _error_row(path, score, f"its overlay cannot be written ({exc.strerror or exc})")
    return {"path": display_path(path), "score": f"{decision.score:.6g}", "decision": decision.verdict,
            "regions": decision.regions, "defect_area_px": decision.defect_area_px,
            "note": MASK_RESIZED_NOTE if decision.mask_resized else "", "error": ""}


def _read_one(path: Path) -> np.ndarray | str:
    """The image, or the reason it cannot be read (which file, what is wrong)."""
    try:
        return read_image(path)
    except ImageReadError as exc:
        return safe_text(str(exc))
    except (MemoryError, ValueError, OSError, cv2.error) as exc:  # one odd file never stops the run
        return f"Cannot read image '{display_path(path)}': {safe_text(str(exc)) or type(exc).__name__}."


def _prefetched_batches(items: Sequence[tuple[Path, str]], batch: int
                        ) -> Iterator[list[tuple[tuple[Path, str], np.ndarray | str]]]:
    """Yield each batch as (item, image or the reason it is unreadable), reading one batch ahead."""
    starts = list(range(0, len(items), batch))
    if not starts:
        return
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="predict-io") as pool:
        def submit(start: int) -> list[Future]:
            return [pool.submit(_read_one, p) for p, _ in items[start:start + batch]]

        pending = submit(starts[0])
        for i, start in enumerate(starts):
            current = pending
            if i + 1 < len(starts):
                pending = submit(starts[i + 1])
            yield [(item, fut.result()) for item, fut in zip(items[start:start + batch], current)]


def read_rows(csv_path: Path) -> list[dict[str, str]]:
    """The valid rows of a scores.csv (one dict per image, keyed by ``CSV_FIELDS``; damaged lines left out)."""
    return read_valid_rows(csv_path)
