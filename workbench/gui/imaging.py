"""Numpy <-> Qt image conversion and a background image loader.

Decoding and resizing happen in a QThreadPool (QImage is safe off the GUI thread, QPixmap is
not), so scrolling through thousands of thumbnails or clicking through large images never
stalls the window. Image decoding itself is always the core's :func:`read_image`, so the GUI
shows exactly what the methods see (grayscale, 16-bit and odd formats included).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Callable

import cv2
import numpy as np
from PySide6.QtCore import QObject, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage

log = logging.getLogger(__name__)


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """RGB uint8 HxWx3 (or HxW gray) array -> an independent QImage (the array may be freed)."""
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"Expected an RGB uint8 image, got shape {rgb.shape} {rgb.dtype}.")
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def fit_within(rgb: np.ndarray, size: int) -> np.ndarray:
    """Shrink (never enlarge) so the longer side is ``size`` pixels, keeping the aspect ratio."""
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    if scale >= 1.0:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


def resize_to(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``rgb`` at exactly ``shape`` (H, W): area when shrinking, bilinear when enlarging
    (e.g. a model-resolution reconstruction shown next to the image it came from)."""
    h, w = shape
    if rgb.shape[:2] == (h, w):
        return rgb
    shrink = h * w < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class BackgroundImageLoader(QObject):
    """Runs ``make()`` callables (image loads, frame renders) in a small thread pool; emits
    ``loaded(key, result)`` / ``failed(key, msg)`` in the GUI thread.

    Requests for a key already queued are merged. The newest request is served first (it is
    what the user is looking at now) and when more than ``max_pending`` queue up (fast
    scrolling), the oldest are dropped: they were for rows the user has scrolled past, and
    the view asks again if those rows come back. ``max_pending=1`` gives "latest wins".
    """

    loaded = Signal(object, object)
    failed = Signal(object, str)
    _loaded = Signal(object, object)
    _failed = Signal(object, str)

    def __init__(self, threads: int = 1, max_pending: int = 64, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.threads = max(1, threads)
        self.pool.setMaxThreadCount(self.threads)
        self.max_pending = max(1, max_pending)
        self._lock = threading.Lock()
        self._queue: OrderedDict[Hashable, Callable[[], object]] = OrderedDict()
        self._in_flight: set[Hashable] = set()
        self._draining = 0
        self._loaded.connect(self._on_loaded)
        self._failed.connect(self._on_failed)
        self.requested = 0  # requests accepted so far; lets tests check that loading is lazy

    def request(self, key: Hashable, make: Callable[[], object], urgent: bool = True) -> None:
        """Queue ``make``; ``urgent`` requests are served before the others (what the user
        waits for), non-urgent ones (prefetch) after."""
        with self._lock:
            if key in self._in_flight:
                return
            if key in self._queue:
                if urgent:
                    self._queue.move_to_end(key)
                return
            self._queue[key] = make
            self.requested += 1
            if not urgent:
                self._queue.move_to_end(key, last=False)
            while len(self._queue) > self.max_pending:
                self._queue.popitem(last=False)
            start = self._draining < self.threads
            if start:
                self._draining += 1
        if start:
            self.pool.start(self._drain)

    def is_pending(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._queue or key in self._in_flight

    def clear(self) -> None:
        """Drop every queued request (e.g. when another dataset is shown)."""
        with self._lock:
            self._queue.clear()

    def wait(self, timeout_ms: int = 5000) -> bool:
        return self.pool.waitForDone(timeout_ms)

    def _drain(self) -> None:
        """Pool thread: serve queued requests, newest first, until the queue is empty."""
        while True:
            with self._lock:
                if not self._queue:
                    self._draining -= 1
                    return
                key, make = self._queue.popitem(last=True)
                self._in_flight.add(key)
            try:
                result = make()
            except Exception as exc:  # an unreadable file becomes an error icon, not a crash
                self._failed.emit(key, str(exc))
            else:
                self._loaded.emit(key, result)
            finally:
                with self._lock:
                    self._in_flight.discard(key)

    @Slot(object, object)
    def _on_loaded(self, key: Hashable, result: object) -> None:
        self.loaded.emit(key, result)

    @Slot(object, str)
    def _on_failed(self, key: Hashable, message: str) -> None:
        log.debug("could not load %s: %s", key, message)
        self.failed.emit(key, message)


class LruCache(OrderedDict):
    """A size-bounded mapping that forgets the least recently used entries."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def get_recent(self, key: Hashable):
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: Hashable, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)
