"""A bounded hand-over queue between a frame source and the scorer that drops, never lags.

Why not :class:`queue.Queue`: at a line the newest part is the one that matters. When the
scorer is slower than the camera, a blocking queue makes every result arrive later and
later (and an unbounded one grows until memory runs out). :class:`DropQueue` keeps at most
``maxsize`` items; a ``put`` into a full queue throws the *oldest* item away and counts it,
so the scorer always works on recent frames and memory stays flat however long the run.
Sources that must not lose anything (replaying a folder as fast as it can be scored) put
with ``block=True`` instead and wait for room.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueClosed(Exception):
    """The queue was closed and holds nothing more."""


class DropQueue(Generic[T]):
    """Thread-safe FIFO of at most ``maxsize`` items that drops the oldest when full."""

    def __init__(self, maxsize: int = 2) -> None:
        if maxsize < 1:
            raise ValueError(f"The queue must hold at least one item, got {maxsize}.")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0  # items thrown away because the queue was full

    def put(self, item: T, block: bool = False, timeout: float | None = None) -> T | None:
        """Add ``item``. Full queue: with ``block`` wait for room (None back, or the item itself
        when the wait timed out or the queue closed); without, drop and return the oldest item."""
        with self._cond:
            if self._closed:
                return item
            if block:
                end = None if timeout is None else time.monotonic() + timeout
                while len(self._items) >= self.maxsize and not self._closed:
                    left = None if end is None else end - time.monotonic()
                    if left is not None and left <= 0:
                        return item
                    self._cond.wait(left)
                if self._closed:
                    return item
            dropped = None
            if len(self._items) >= self.maxsize:
                dropped = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item; None when ``timeout`` passed first. Raises :class:`QueueClosed`
        once the queue is closed and empty."""
        with self._cond:
            end = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self._closed:
                    raise QueueClosed
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """No more puts; ``get`` drains what is left, then raises :class:`QueueClosed`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
