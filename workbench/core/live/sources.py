"""Where live images come from: a watched folder, a camera, or a folder replayed at a rate.

Every source has one small interface (:class:`FrameSource`): ``frames(stop, notice)`` yields
:class:`Frame` objects (the decoded RGB image, or why it could not be read) until it runs out
or ``stop`` is set; ``notice(text)`` reports conditions the operator should see without
ending the run (the watched folder disappeared, the camera stopped delivering). The scoring
loop (:mod:`workbench.core.live.session`) runs ``frames`` in a producer thread.

* :class:`WatchedFolder` (the ``watchdog`` library): a file is picked up once, and only when
  it is completely written: its size and modification time have not changed for
  ``settle_s`` seconds and it can be opened, or it was renamed inside the folder (the usual
  "write to a temporary name, then rename" of cameras and PLC software; a file moved in from
  another folder counts as new and waits ``settle_s``). A periodic rescan
  backs up the file-system events (network shares often deliver none).
* :class:`CameraSource`: OpenCV ``VideoCapture`` by device index or stream URL, with a
  frame-rate cap (frames read in between are discarded, so the camera's buffer never holds
  stale parts). GenICam / GigE Vision cameras: ``pip install harvesters`` and a GenTL
  producer from the camera vendor; wrap its image acquirer in an object with ``read()`` ->
  ``(ok, frame)``, ``isOpened()`` and ``release()`` and pass it as ``capture_factory``.
* :class:`ReplayFolder`: the images of a folder in name order at ``fps`` frames per second
  (or as fast as they are scored when ``fps`` is None): the demo when no camera is present.

Torch-free: NumPy, OpenCV and watchdog only.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from workbench.core.data import IMAGE_SUFFIXES, ImageReadError, read_image
from workbench.core.results_csv import display_path, safe_text

log = logging.getLogger(__name__)

Notice = Callable[[str], None]


class SourceError(ValueError):
    """A source cannot start (no such folder, camera not found); the message says what to do."""


@dataclass
class Frame:
    """One image from a source. ``image`` is RGB uint8, or None with ``error`` saying why."""

    source: str              # "watch", "camera" or "replay"
    name: str                # file path as shown in the log, or "frame 12" for a camera
    captured: float          # time.monotonic() when the source had the part (latency starts here)
    wall_time: float         # time.time() of the same moment (the log's clock)
    image: np.ndarray | None
    path: Path | None = None
    error: str = ""


class FrameSource(Protocol):
    kind: str
    #: True: the loop waits for the scorer instead of dropping (a replay as fast as possible)
    blocking: bool

    def describe(self) -> str: ...

    def frames(self, stop: threading.Event, notice: Notice) -> Iterator[Frame]: ...


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def read_frame(kind: str, path: Path) -> Frame:
    """Decode ``path`` into a frame (or a frame that says why it is unreadable)."""
    captured, wall = time.monotonic(), time.time()
    try:
        image, error = read_image(path), ""
    except ImageReadError as exc:
        image, error = None, safe_text(str(exc))
    except (MemoryError, ValueError, OSError, cv2.error) as exc:
        image, error = None, f"Cannot read image '{display_path(path)}': {safe_text(str(exc)) or type(exc).__name__}."
    return Frame(kind, display_path(path), captured, wall, image, path, error)


# ----------------------------------------------------------------------------- watched folder
@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    changed: float       # monotonic time of the last size/mtime change
    first_seen: float
    moved_in: bool = False


class WatchedFolder:
    """New image files in ``folder``, each once, when completely written (see the module doc).

    ``existing``: also the images already there at start (default: only new ones).
    ``give_up_s``: a file that stays unopenable (permissions) this long is reported as unreadable.
    """

    kind = "watch"
    blocking = False

    def __init__(self, folder: str | Path, *, settle_s: float = 0.5, poll_s: float = 0.05,
                 rescan_s: float = 2.0, give_up_s: float = 10.0, recursive: bool = False,
                 existing: bool = False) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceError(f"The folder to watch does not exist: {self.folder}. Create it or check the path.")
        self.settle_s, self.poll_s, self.rescan_s, self.give_up_s = settle_s, poll_s, rescan_s, give_up_s
        self.recursive, self.existing = recursive, existing

    def describe(self) -> str:
        return f"watching {self.folder}"

    def _listing(self) -> set[Path]:
        pattern = self.folder.rglob("*") if self.recursive else self.folder.iterdir()
        try:
            return {p for p in pattern if _is_image_name(p) and p.is_file()}
        except OSError:
            return set()

    def _start_observer(self, events: queue.SimpleQueue):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        folder = self.folder

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.is_directory:
                    return
                kind = event.event_type
                if kind == "moved":
                    events.put(("deleted", Path(os.fsdecode(event.src_path))))
                    events.put(("moved", Path(os.fsdecode(event.dest_path))))
                elif kind in ("created", "modified", "closed"):
                    events.put(("seen", Path(os.fsdecode(event.src_path))))
                elif kind == "deleted":
                    events.put(("deleted", Path(os.fsdecode(event.src_path))))

        observer = Observer()
        observer.schedule(Handler(), str(folder), recursive=self.recursive)
        observer.daemon = True
        observer.start()
        return observer

    def frames(self, stop: threading.Event, notice: Notice) -> Iterator[Frame]:
        events: queue.SimpleQueue = queue.SimpleQueue()
        pending: dict[Path, _Candidate] = {}
        done: set[Path] = set() if self.existing else self._listing()
        observer = self._start_observer(events)
        present = True
        last_rescan = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                if not self.folder.is_dir():
                    if present:
                        notice(f"The watched folder {self.folder} is gone (deleted, renamed or the drive was "
                               "disconnected); waiting for it to come back.")
                        present = False
                        observer.stop()
                        pending.clear()
                    stop.wait(max(self.poll_s, 0.2))
                    continue
                if not present:  # back: watch it again; what is in it now is new
                    try:
                        observer = self._start_observer(events)
                    except OSError:  # gone again at once
                        stop.wait(max(self.poll_s, 0.2))
                        continue
                    notice(f"The watched folder {self.folder} is back; watching it again.")
                    present = True
                    last_rescan = 0.0
                while True:
                    try:
                        kind, path = events.get_nowait()
                    except queue.Empty:
                        break
                    self._on_event(kind, path, pending, done, now)
                if now - last_rescan >= self.rescan_s:  # events can be missed (network shares)
                    last_rescan = now
                    listing = self._listing()
                    done &= listing  # a name deleted and written again is a new part
                    for path in listing - done - set(pending):
                        self._on_event("seen", path, pending, done, now)
                for path in list(pending):
                    frame = self._check(path, pending, now)
                    if frame is not None:
                        done.add(path)
                        yield frame
                stop.wait(self.poll_s)
        finally:
            observer.stop()

    def _on_event(self, kind: str, path: Path, pending: dict[Path, _Candidate], done: set[Path],
                  now: float) -> None:
        if kind == "deleted":
            pending.pop(path, None)
            done.discard(path)
            return
        if not _is_image_name(path) or path in done:
            return
        try:
            st = path.stat()
        except OSError:
            return
        cand = pending.get(path)
        if cand is None:
            pending[path] = _Candidate(st.st_size, st.st_mtime_ns, now, now, moved_in=kind == "moved")
        elif kind == "moved":
            cand.moved_in = True

    def _check(self, path: Path, pending: dict[Path, _Candidate], now: float) -> Frame | None:
        """The frame of ``path`` when it is complete, else None (it stays pending)."""
        cand = pending[path]
        try:
            st = path.stat()
        except OSError:  # gone again before it was complete
            pending.pop(path)
            return None
        if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns):
            cand.size, cand.mtime_ns, cand.changed, cand.moved_in = st.st_size, st.st_mtime_ns, now, False
            return None
        if not cand.moved_in and (now - cand.changed < self.settle_s or st.st_size == 0):
            if st.st_size == 0 and now - cand.first_seen >= self.give_up_s:
                pending.pop(path)
                return Frame(self.kind, display_path(path), now, time.time(), None, path,
                             f"{display_path(path)} stayed empty for {self.give_up_s:g} s.")
            return None
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            if now - cand.first_seen < self.give_up_s:
                return None  # e.g. still locked by the writer (Windows): try again
            pending.pop(path)
            return Frame(self.kind, display_path(path), now, time.time(), None, path,
                         f"Cannot open '{display_path(path)}': {exc.strerror or exc}. Check its permissions.")
        pending.pop(path)
        return read_frame(self.kind, path)


# ----------------------------------------------------------------------------- camera
def parse_camera(text: str | int) -> int | str:
    """A device index ("0") or a stream URL / file ("rtsp://...")."""
    if isinstance(text, int):
        return text
    text = text.strip()
    return int(text) if text.isdigit() else text


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """An OpenCV frame (BGR, BGRA, grey, 8 or 16 bit) as RGB uint8."""
    frame = np.asarray(frame)
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    if frame.shape[2] == 1:
        return cv2.cvtColor(frame[:, :, 0], cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class CameraSource:
    """Frames of an OpenCV ``VideoCapture`` (device index or URL), at most ``fps`` per second.

    ``capture_factory(device)`` makes the capture object (default ``cv2.VideoCapture``; tests
    and GenICam cameras pass their own): it needs ``isOpened()``, ``read()`` -> ``(ok, frame)``
    and ``release()``. After ``max_failures`` failed reads in a row the source ends with a notice.
    """

    kind = "camera"
    blocking = False

    def __init__(self, device: int | str, fps: float | None = None,
                 capture_factory: Callable[[int | str], Any] | None = None, max_failures: int = 50,
                 retry_s: float = 0.05) -> None:
        if fps is not None and not fps > 0:
            raise SourceError(f"The frame-rate cap must be above 0, got {fps}.")
        self.device = parse_camera(device)
        self.fps = fps
        self.capture_factory = capture_factory or cv2.VideoCapture
        self.max_failures = max_failures
        self.retry_s = retry_s

    def describe(self) -> str:
        cap = f" at most {self.fps:g} frames/s" if self.fps else ""
        return f"camera {self.device}{cap}"

    def open(self):
        capture = self.capture_factory(self.device)
        if capture is None or not capture.isOpened():
            if capture is not None:
                capture.release()
            what = "device index" if isinstance(self.device, int) else "stream"
            raise SourceError(f"Cannot open camera {self.device!r} ({what}). Check that it is connected and not "
                              "used by another program, or give another index or URL.")
        return capture

    def frames(self, stop: threading.Event, notice: Notice) -> Iterator[Frame]:
        capture = self.open()
        interval = 1.0 / self.fps if self.fps else 0.0
        next_due = 0.0
        failures = 0
        count = itertools.count(1)
        try:
            while not stop.is_set():
                ok, raw = capture.read()
                now = time.monotonic()
                if not ok or raw is None:
                    failures += 1
                    if failures >= self.max_failures:
                        notice(f"Camera {self.device!r} delivered no image {failures} times in a row; stopping "
                               "(end of the stream, or the camera was disconnected).")
                        return
                    stop.wait(self.retry_s)
                    continue
                failures = 0
                if interval and now < next_due:
                    continue  # over the cap: read (so the buffer stays fresh) but do not score
                next_due = max(next_due + interval, now) if interval else 0.0
                yield Frame(self.kind, f"frame {next(count)}", now, time.time(), to_rgb(raw))
        finally:
            capture.release()


# ----------------------------------------------------------------------------- replay
class ReplayFolder:
    """The images under ``folder`` (sorted by path, sub-folders included) at ``fps`` frames per
    second (None: as fast as they are scored, nothing dropped); ``loop`` starts over at the end."""

    kind = "replay"

    def __init__(self, folder: str | Path, fps: float | None = None, loop: bool = False) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceError(f"The folder to replay does not exist: {self.folder}.")
        if fps is not None and not fps > 0:
            raise SourceError(f"The replay rate must be above 0 frames per second, got {fps}.")
        self.fps, self.loop = fps, loop
        self.paths = sorted((p for p in self.folder.rglob("*") if _is_image_name(p) and p.is_file()),
                            key=lambda p: p.relative_to(self.folder).as_posix())
        if not self.paths:
            raise SourceError(f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {self.folder}.")

    @property
    def blocking(self) -> bool:
        return self.fps is None

    def describe(self) -> str:
        rate = f"{self.fps:g} frames/s" if self.fps else "as fast as scored"
        return f"replaying {len(self.paths)} images of {self.folder} ({rate}{', looping' if self.loop else ''})"

    def frames(self, stop: threading.Event, notice: Notice) -> Iterator[Frame]:
        interval = 1.0 / self.fps if self.fps else 0.0
        due = time.monotonic()
        while True:
            for path in self.paths:
                if stop.is_set():
                    return
                if interval:
                    wait = due - time.monotonic()
                    if wait > 0 and stop.wait(wait):
                        return
                    due = max(due + interval, time.monotonic() - interval)  # never a burst to catch up
                yield read_frame(self.kind, path)
            if not self.loop:
                return
