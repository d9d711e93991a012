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

import csv
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from workbench.core.data import ImageReadError, read_image
from workbench.core.files import atomic_write_json
from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.calibration.policy import InspectionPolicy, MapScale
from workbench.core.visualize import annotate, draw_outline, heat_overlay

CSV_FILE = "scores.csv"
RUN_FILE = "predict_run.json"
# decision: OK / REVIEW / NG, "error" (no finite score), "unreadable", or "" (the model has no threshold);
# regions / defect_area_px: connected defect regions and their pixels after the minimum area;
# note: e.g. that the ROI/ignore masks were resized to this image's size.
CSV_FIELDS = ["path", "score", "decision", "regions", "defect_area_px", "note"]
MASK_RESIZED_NOTE = "ROI/ignore mask resized to this image"


class Scorer(Protocol):
    """What the streamer needs: a torch ``AnomalyModel`` or an ``OnnxInferencer``."""

    metadata: dict[str, Any]
    params: dict[str, Any]

    def predict(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...


class ResumeMismatchError(ValueError):
    """The output folder holds a run of another model or threshold."""


@dataclass(frozen=True)
class PredictSummary:
    csv_path: Path
    total: int          # images asked for
    scored: int         # scored in this call
    resumed: int        # already in the CSV from an earlier, interrupted call
    unreadable: int     # recorded as 'unreadable' in this call
    n_ng: int           # NG decisions in the whole CSV
    problems: tuple[str, ...] = ()  # why each unreadable image of this call could not be read
    n_review: int = 0   # REVIEW decisions in the whole CSV


def model_fingerprint(model_dir: str | Path) -> str:
    """SHA-256 of the folder's model.json: it changes with every retrain, calibration or export."""
    return hashlib.sha256((Path(model_dir) / "model.json").read_bytes()).hexdigest()


def predict_folder(scorer: Scorer, items: Sequence[tuple[Path, str]], out_dir: str | Path, *,
                   fingerprint: str, threshold: float | None = None, policy: InspectionPolicy | None = None,
                   overlays: bool = True,
                   resume: bool = True, batch_size: int | None = None,
                   progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> PredictSummary:
    """Score ``items`` (path, unique output stem) into ``out_dir/scores.csv`` (+ overlay PNGs).

    ``policy`` decides each image (default: the scorer's own, from its metadata and, for masks,
    its ``directory``); ``threshold`` replaces its NG threshold (dropping a band that would lie
    above it). With ``resume`` (the default) images already in an existing CSV of the same model and
    policy are skipped; with ``resume=False`` the CSV is started afresh. Raises
    ``Cancelled`` between batches when ``cancel`` is set; every finished row is on disk then.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / CSV_FILE
    if policy is None:
        policy = InspectionPolicy.from_metadata(scorer.metadata, getattr(scorer, "directory", None))
    if threshold is not None:
        ok = policy.ok_threshold
        policy = policy.replace(ng_threshold=threshold, ok_threshold=ok if ok is not None and ok <= threshold else None,
                                source="--threshold")
    run = {"model_fingerprint": fingerprint, "threshold": policy.ng_threshold, "policy": policy.fingerprint(),
           "overlays": overlays}
    done = _prepare_csv(csv_path, out_dir / RUN_FILE, run, resume)
    todo = [(p, stem) for p, stem in items if str(p) not in done]
    resumed = len(items) - len(todo)
    scale = policy.map_scale() if policy.pixel_stats else None
    batch = max(1, int(batch_size or scorer.params.get("batch_size", 8)))
    report = make_reporter(progress, "predict", len(items))
    report(resumed, f"{resumed} already scored" if resumed else "")
    scored = unreadable = 0
    problems: list[str] = []
    with open(csv_path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        for loaded in _prefetched_batches(todo, batch):
            if cancel is not None:
                cancel.raise_if_cancelled()
            readable = [(item, image) for item, image in loaded if isinstance(image, np.ndarray)]
            problems += [image for _, image in loaded if isinstance(image, str)]
            results: dict[Path, dict[str, Any]] = {}
            if readable:
                scores, maps = scorer.predict([image for _, image in readable])
                scale_b = scale or policy.map_scale(maps)
                # no good-image statistics: outline from this batch's map scale, as the heat map shows
                policy_b = policy if policy.outline_threshold is not None else policy.replace(
                    pixel_threshold=scale_b.threshold)
                for ((path, stem), image), score, amap in zip(readable, scores, maps):
                    results[path] = _score_row(path, stem, image, float(score), amap, policy_b, scale_b,
                                               out_dir if overlays else None)
            rows = [results.get(path) or {**dict.fromkeys(CSV_FIELDS, ""), "path": str(path),
                                          "decision": "unreadable"} for (path, _), _ in loaded]
            # overlays first, rows last: a row on disk means that image is completely done
            writer.writerows(rows)
            fh.flush()
            os.fsync(fh.fileno())
            scored += len(readable)
            unreadable += len(loaded) - len(readable)
            report(resumed + scored + unreadable)
    decisions = [r["decision"] for r in read_rows(csv_path)]
    return PredictSummary(csv_path, len(items), scored, resumed, unreadable, decisions.count("NG"),
                          tuple(problems), decisions.count("REVIEW"))


def _score_row(path: Path, stem: str, image: np.ndarray, score: float, amap: np.ndarray,
               policy: InspectionPolicy, scale: MapScale, overlay_dir: Path | None) -> dict[str, Any]:
    decision = policy.decide(score, amap, image.shape[:2])
    if overlay_dir is not None:
        vis = heat_overlay(image, scale.normalize(amap), alpha=0.45)
        if decision.verdict != "OK":
            vis = draw_outline(vis, decision.region)
        vis = annotate(vis, f"{decision.score:.4g} {decision.verdict or 'no threshold'}", decision.verdict)
        ok, png = cv2.imencode(".png", vis[:, :, ::-1])
        if not ok:
            raise OSError(f"Could not encode the overlay of {path}")
        png.tofile(overlay_dir / f"{stem}_overlay.png")  # tofile: non-ASCII paths work
    return {"path": str(path), "score": f"{decision.score:.6g}", "decision": decision.verdict,
            "regions": decision.regions, "defect_area_px": decision.defect_area_px,
            "note": MASK_RESIZED_NOTE if decision.mask_resized else ""}


def _read_one(path: Path) -> np.ndarray | str:
    """The image, or the reason it cannot be read (which file, what is wrong)."""
    try:
        return read_image(path)
    except ImageReadError as exc:
        return str(exc)


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
    """The rows of a scores.csv (one dict per image, keyed by ``CSV_FIELDS``)."""
    with open(csv_path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _prepare_csv(csv_path: Path, run_path: Path, run: dict[str, Any], resume: bool) -> set[str]:
    """Start or reopen the CSV; returns the paths it already holds."""
    if resume and csv_path.is_file() and csv_path.stat().st_size > 0:
        previous = json.loads(run_path.read_text(encoding="utf-8")) if run_path.is_file() else None
        if previous != run:
            what = "an unknown run" if previous is None else (
                "another model" if previous.get("model_fingerprint") != run["model_fingerprint"]
                else "another threshold, inspection policy or overlay setting")
            raise ResumeMismatchError(
                f"{csv_path} was written by {what}. Choose another output folder, or start over "
                "(the CLI's --restart) to replace it.")
        _cut_torn_line(csv_path)
        rows = read_rows(csv_path)
        if rows and list(rows[0]) != CSV_FIELDS:
            raise ResumeMismatchError(f"{csv_path} has unexpected columns; choose another output folder.")
        return {r["path"] for r in rows}
    atomic_write_json(run_path, run)
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        csv.DictWriter(fh, fieldnames=CSV_FIELDS).writeheader()
    return set()


def _cut_torn_line(csv_path: Path) -> None:
    """Drop a last line that a kill interrupted mid-write (no trailing newline)."""
    data = csv_path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(csv_path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)
