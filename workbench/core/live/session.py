"""The live scoring loop: a source thread feeds a bounded queue, the scorer decides each frame.

::

    source.frames()  --(producer thread)-->  DropQueue(2)  -->  score + decide  -->  log row,
                                                                                     NG/REVIEW copy,
                                                                                     on_result(...)

The producer reads and decodes frames; :meth:`LiveInspection.run` (the calling thread: the
CLI's main thread, or a thread of the GUI) scores them one at a time with the model
(onnxruntime or torch), decides with the model's :class:`InspectionPolicy` (the same rule as
``predict``, the GUI and the exported package) and writes the log row before the next frame.
When scoring is slower than the source the queue drops the oldest waiting frame, so results
never lag behind the line; the drop count goes into every row, the stats and the summary
(and a file that was dropped gets a ``dropped`` row: it is still in the folder, unscored).
Nothing grows with the length of a run: the queue is bounded, rows go to disk and are not
kept, the statistics keep fixed-size windows.

No Qt and no torch here (torch only through a training-package scorer the caller loads).
"""

from __future__ import annotations

import logging
import math
import shutil
import statistics
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from workbench.core.calibration.policy import NG, OK, REVIEW, InspectionPolicy, MapScale
from workbench.core.live.log import DROPPED, UNREADABLE, LiveLog
from workbench.core.live.queues import DropQueue, QueueClosed
from workbench.core.live.sources import Frame, FrameSource
from workbench.core.results_csv import safe_text
from workbench.core.visualize import draw_outline, heat_overlay

log = logging.getLogger(__name__)

DISPLAY_MAX = 1024   # longest side of the images handed to a viewer (the log and copies keep full size)
LATENCY_WINDOW = 1000
FPS_WINDOW = 30
MAX_NOTICES = 50


class Scorer(Protocol):
    metadata: dict[str, Any]

    def predict(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...


def load_live_scorer(model_dir: str | Path, device: Any = None):
    """An exported ONNX package (onnxruntime, torch-free) or a training package (torch, imported here only)."""
    from workbench.core.export.runtime import OnnxInferencer, is_exported_package

    if is_exported_package(model_dir):
        return OnnxInferencer(model_dir)
    from workbench.core.workflows import load_scorer

    return load_scorer(model_dir, device)


@dataclass
class LiveResult:
    """The decision on one frame (what the log row says, plus images for a viewer)."""

    index: int
    source: str
    name: str
    path: Path | None
    wall_time: float
    verdict: str            # OK / REVIEW / NG, "error", "unreadable" or "" (model without threshold)
    score: float | None
    regions: int = 0
    defect_area_px: int = 0
    latency_ms: float = 0.0  # from the frame being available to its decision (queue wait included)
    score_ms: float = 0.0    # the model alone
    error: str = ""
    dropped_total: int = 0
    image: np.ndarray | None = field(default=None, repr=False)  # RGB, at most DISPLAY_MAX (with render)
    view: np.ndarray | None = field(default=None, repr=False)   # heat map + outline, same size (with render)


class LiveStats:
    """Running counts, yield, latency and frames per second over fixed-size windows."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.counts: Counter[str] = Counter()
        self.n = 0
        self.dropped = 0
        self.copies = 0
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.latency_max = 0.0
        self.times: deque[float] = deque(maxlen=FPS_WINDOW)
        self._lock = threading.Lock()  # a viewer reads the stats while the loop adds to them

    def add(self, result: LiveResult) -> None:
        with self._lock:
            self._add(result)

    def _add(self, result: LiveResult) -> None:
        self.n += 1
        self.counts[result.verdict or "undecided"] += 1
        if result.verdict in (OK, REVIEW, NG):
            self.latencies.append(result.latency_ms)
            self.latency_max = max(self.latency_max, result.latency_ms)
        self.times.append(time.monotonic())

    @property
    def decided(self) -> int:
        return sum(self.counts[v] for v in (OK, REVIEW, NG))

    @property
    def yield_(self) -> float | None:
        """Share of decided parts that passed as OK (None before the first one)."""
        return self.counts[OK] / self.decided if self.decided else None

    @property
    def fps(self) -> float:
        """Frames decided per second over the last few frames (0 when too few)."""
        if len(self.times) < 2 or self.times[-1] <= self.times[0]:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])

    def latency(self) -> dict[str, float | None]:
        values = sorted(self.latencies)
        if not values:
            return {"median": None, "p95": None, "max": None}
        return {"median": round(statistics.median(values), 2),
                "p95": round(values[min(len(values) - 1, int(math.ceil(0.95 * len(values))) - 1)], 2),
                "max": round(self.latency_max, 2)}

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return self._to_json()

    def _to_json(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        return {"images": self.n, "counts": dict(self.counts), "yield": self.yield_, "dropped": self.dropped,
                "copies": self.copies, "seconds": round(elapsed, 3),
                "fps": round(self.n / elapsed, 3) if elapsed > 0 else 0.0,
                "latency_ms": self.latency(), "recent_fps": round(self.fps, 3)}


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall).astimezone().isoformat(timespec="milliseconds")


def _fit(image: np.ndarray, size: int = DISPLAY_MAX) -> np.ndarray:
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale >= 1.0:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


class LiveInspection:
    """One live session: ``run()`` scores frames of ``source`` until it ends, ``stop()`` is
    called, ``max_images`` frames were decided or ``duration_s`` passed; returns the summary.

    ``policy`` defaults to the scorer's own (from its metadata and package folder).
    ``render``: attach display images (heat map + outline) to each :class:`LiveResult`.
    ``on_result`` / ``on_notice`` are called in the scoring thread; keep them short.
    """

    def __init__(self, scorer: Scorer, source: FrameSource, *, policy: InspectionPolicy | None = None,
                 log: LiveLog | None = None, copy_dir: str | Path | None = None, queue_size: int = 2,
                 max_images: int | None = None, duration_s: float | None = None, render: bool = False,
                 on_result: Callable[[LiveResult], None] | None = None,
                 on_notice: Callable[[str], None] | None = None, summary_every_s: float = 5.0,
                 model_name: str = "") -> None:
        self.scorer = scorer
        self.source = source
        self.policy = policy or InspectionPolicy.from_metadata(scorer.metadata, getattr(scorer, "directory", None))
        self.log = log
        self.copy_dir = Path(copy_dir) if copy_dir else None
        self.queue: DropQueue[Frame] = DropQueue(queue_size)
        self.max_images, self.duration_s = max_images, duration_s
        self.render = render
        self.on_result, self.on_notice = on_result, on_notice
        self.summary_every_s = summary_every_s
        self.model_name = model_name
        self.stats = LiveStats()
        self.notices: deque[str] = deque(maxlen=MAX_NOTICES)
        self.source_error: str = ""
        self.ended_by = ""
        self._stop = threading.Event()
        self._scale = self.policy.map_scale() if self.policy.pixel_stats else None
        self._started_wall = time.time()

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """End the session after the frame being scored (thread-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def notice(self, text: str) -> None:
        text = safe_text(text)
        log.warning("%s", text)
        self.notices.append(f"{_iso(time.time())} {text}")
        if self.on_notice is not None:
            self.on_notice(text)

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        if self.copy_dir is not None:
            self.copy_dir.mkdir(parents=True, exist_ok=True)
        self.stats = LiveStats()
        self._started_wall = time.time()
        producer = threading.Thread(target=self._produce, name="live-source", daemon=True)
        producer.start()
        last_summary = time.monotonic()
        try:
            while not self._stop.is_set():
                if self.duration_s is not None and time.monotonic() - self.stats.started >= self.duration_s:
                    self.ended_by = f"duration {self.duration_s:g} s reached"
                    break
                if self.max_images is not None and self.stats.n >= self.max_images:
                    self.ended_by = f"{self.max_images} images decided"
                    break
                try:
                    frame = self.queue.get(timeout=0.1)
                except QueueClosed:
                    self.ended_by = self.ended_by or ("source error" if self.source_error else "source ended")
                    break
                if frame is not None:
                    self._handle(frame)
                if self.log is not None and time.monotonic() - last_summary >= self.summary_every_s:
                    last_summary = time.monotonic()
                    self.log.write_summary(self.summary())
        except KeyboardInterrupt:
            self.ended_by = "interrupted (Ctrl+C)"
        finally:
            if not self.ended_by:
                self.ended_by = "stopped"
            self._stop.set()
            self.queue.close()
            producer.join(timeout=10)
            self.stats.dropped = self.queue.dropped
        summary = self.summary()
        if self.log is not None:
            summary["summary_file"] = str(self.log.write_summary(summary))
        return summary

    def summary(self) -> dict[str, Any]:
        self.stats.dropped = self.queue.dropped
        out = {"model": self.model_name, "source": self.source.describe(),
               "log": str(self.log.path) if self.log is not None else None,
               "copies_to": str(self.copy_dir) if self.copy_dir is not None else None,
               "started": _iso(self._started_wall), "updated": _iso(time.time()), "ended_by": self.ended_by,
               "ng_threshold": self.policy.ng_threshold, "ok_threshold": self.policy.ok_threshold,
               **self.stats.to_json(), "notices": list(self.notices)}
        if self.source_error:
            out["source_error"] = self.source_error
        return out

    def _produce(self) -> None:
        try:
            for frame in self.source.frames(self._stop, self.notice):
                if self.source.blocking:
                    while self.queue.put(frame, block=True, timeout=0.2) is frame:
                        if self._stop.is_set():
                            return
                else:
                    old = self.queue.put(frame)
                    if old is not None:
                        self._dropped(old)
        except Exception as exc:  # noqa: BLE001 - a source failure ends the session with its reason
            self.source_error = safe_text(str(exc)) or type(exc).__name__
            self.notice(f"The source stopped: {self.source_error}")
        finally:
            self.queue.close()

    def _dropped(self, frame: Frame) -> None:
        self.stats.dropped = self.queue.dropped
        if frame.path is not None and self.log is not None:  # a file: say which part was not inspected
            self.log.append({"time": _iso(frame.wall_time), "source": frame.source, "file": frame.name,
                             "decision": DROPPED, "dropped": self.queue.dropped,
                             "error": "the scorer was busy; the file was not scored"})

    # ------------------------------------------------------------------ one frame
    def _handle(self, frame: Frame) -> None:
        result = self._decide(frame)
        result.dropped_total = self.queue.dropped
        self.stats.dropped = self.queue.dropped
        self.stats.add(result)
        if self.log is not None:
            self.log.append({
                "time": _iso(frame.wall_time), "source": frame.source, "file": frame.name,
                "score": "" if result.score is None or not math.isfinite(result.score) else f"{result.score:.6g}",
                "decision": result.verdict, "regions": result.regions if result.score is not None else "",
                "defect_area_px": result.defect_area_px if result.score is not None else "",
                "latency_ms": f"{result.latency_ms:.1f}", "dropped": result.dropped_total, "error": result.error})
        if result.verdict in (NG, REVIEW) and self.copy_dir is not None:
            self._copy(frame, result)
        if self.on_result is not None:
            self.on_result(result)

    def _decide(self, frame: Frame) -> LiveResult:
        base = dict(index=self.stats.n + 1, source=frame.source, name=frame.name, path=frame.path,
                    wall_time=frame.wall_time)
        if frame.image is None:
            return LiveResult(**base, verdict=UNREADABLE, score=None, error=frame.error,
                              latency_ms=(time.monotonic() - frame.captured) * 1000)
        t0 = time.monotonic()
        try:
            scores, maps = self.scorer.predict([frame.image])
        except Exception as exc:  # noqa: BLE001 - one frame the model cannot take never ends the session
            return LiveResult(**base, verdict="error", score=None, latency_ms=(time.monotonic() - frame.captured) * 1000,
                              error=f"{frame.name}: the model failed on this image ({safe_text(str(exc))[:300]})")
        score_ms = (time.monotonic() - t0) * 1000
        amap = np.asarray(maps[0], np.float32)
        scale = self._scale or self.policy.map_scale(amap[np.isfinite(amap)] if np.isfinite(amap).any()
                                                     else np.zeros(1, np.float32))
        policy = self.policy if self.policy.outline_threshold is not None else self.policy.replace(
            pixel_threshold=scale.threshold)
        decision = policy.decide(float(scores[0]), amap, frame.image.shape[:2])
        error = "" if decision.verdict != "error" else (
            f"{frame.name}: the model gave a non-finite score; check the model and the image")
        result = LiveResult(**base, verdict=decision.verdict, score=decision.score, regions=decision.regions,
                            defect_area_px=decision.defect_area_px, score_ms=score_ms, error=error)
        if self.render:
            result.image, result.view = self._render(frame.image, amap, decision.region, decision.verdict, scale)
        result.latency_ms = (time.monotonic() - frame.captured) * 1000
        return result

    @staticmethod
    def _render(image: np.ndarray, amap: np.ndarray, region: np.ndarray, verdict: str,
                scale: MapScale) -> tuple[np.ndarray, np.ndarray]:
        shown = _fit(image)
        heat = scale.normalize(np.nan_to_num(amap, nan=scale.threshold))
        view = heat_overlay(shown, heat, alpha=0.45)
        if verdict not in (OK, "") and region.any():
            small = region if region.shape == shown.shape[:2] else cv2.resize(
                region.astype(np.uint8), (shown.shape[1], shown.shape[0]), interpolation=cv2.INTER_NEAREST)
            view = draw_outline(view, small, color=(255, 214, 10))
        return shown, view

    def _copy(self, frame: Frame, result: LiveResult) -> None:
        assert self.copy_dir is not None
        stamp = datetime.fromtimestamp(frame.wall_time).strftime("%Y%m%d-%H%M%S-%f")[:-3]
        try:
            if frame.path is not None:
                shutil.copy2(frame.path, self.copy_dir / f"{stamp}_{result.verdict}_{frame.path.name}")
            else:
                ok, png = cv2.imencode(".png", np.ascontiguousarray(frame.image[:, :, ::-1]))  # type: ignore[index]
                if ok:
                    png.tofile(self.copy_dir / f"{stamp}_{result.verdict}_{frame.name.replace(' ', '-')}.png")
            self.stats.copies += 1
        except OSError as exc:
            self.notice(f"Could not copy {frame.name} to {self.copy_dir} ({exc.strerror or exc}); the session goes on.")
