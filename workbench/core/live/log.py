"""The result log of a live session: one CSV row per part, written as it is decided.

The same conventions as ``predict``'s ``scores.csv`` (:mod:`workbench.core.results_csv`):
a plain CSV any spreadsheet opens, file names written safely (:func:`safe_text`), a CRC-32
``row_check`` column per row, an OS-level lock (``filelock``) so two sessions never write
the same file. Each row goes to the file in one ``write`` call and is flushed at once (a
killed process loses nothing the OS already has); ``fsync`` runs at most once per
``fsync_s`` seconds (a power cut loses at most that much). A torn last line (power cut in
the middle of a write) fails its checksum, and the next session starts on a new line, so
every row it writes parses.

A new session on an existing log appends to it. The session summary (counts, yield, drops,
latency, frames per second) goes to ``<log>.summary.json`` beside it, rewritten atomically
every few seconds and at the end.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from workbench.core.files import atomic_write_json
from workbench.core.results_csv import CHECK_FIELD, encode_rows, read_valid_rows, row_check, safe_text

LIVE_FIELDS = ["time", "source", "file", "score", "decision", "regions", "defect_area_px", "latency_ms",
               "dropped", "error", CHECK_FIELD]
DROPPED = "dropped"      # decision of a file the scorer had no time for (the file is still there)
UNREADABLE = "unreadable"


class LiveLogError(ValueError):
    """The log file cannot be used (another session writes it, it is another CSV, no permission)."""


def summary_path(log_path: str | Path) -> Path:
    path = Path(log_path)
    return path.with_name(f"{path.name}.summary.json")


def read_log(path: str | Path) -> list[dict[str, str]]:
    """The rows of a live log that parse and match their checksum."""
    return read_valid_rows(path, LIVE_FIELDS)


class LiveLog:
    """Append-only CSV of one live session (use as a context manager; thread-safe ``append``)."""

    def __init__(self, path: str | Path, fsync_s: float = 1.0) -> None:
        self.path = Path(path)
        self.fsync_s = fsync_s
        self._lock = FileLock(str(self.path.with_name(f".{self.path.name}.lock")), timeout=0)
        self._write_lock = threading.Lock()
        self._fh = None
        self._last_sync = 0.0
        self.rows_written = 0

    def __enter__(self) -> LiveLog:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if self.path.is_dir():
            raise LiveLogError(f"{self.path} is a folder; give a file name for the log, e.g. {self.path / 'live.csv'}.")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except Timeout:
            raise LiveLogError(f"Another inspection session is writing {self.path} right now. Stop it, or give "
                               "another --log file.") from None
        except OSError as exc:
            raise LiveLogError(f"Cannot write the log {self.path} ({exc.strerror or exc}).") from exc
        try:
            self._fh = self._open_for_append()
        except BaseException:
            self._lock.release()
            raise

    def _open_for_append(self):
        header = encode_rows([dict(zip(LIVE_FIELDS, LIVE_FIELDS))], LIVE_FIELDS)
        try:
            fh = open(self.path, "ab")
        except OSError as exc:
            raise LiveLogError(f"Cannot write the log {self.path} ({exc.strerror or exc}).") from exc
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            fh.write(header)
        else:
            with open(self.path, "rb") as rd:
                first = rd.readline()
                rd.seek(size - 1)
                ends_with_newline = rd.read(1) == b"\n"
            if first != header:
                fh.close()
                shown = first[:80].decode("utf-8", "backslashreplace").rstrip()
                raise LiveLogError(f"{self.path} is not a live inspection log (its first line is '{shown}'). "
                                   "Give another --log file; a new session appends only to a log of its own kind.")
            if not ends_with_newline:  # a torn last row of a killed session: start a fresh line
                fh.write(b"\n")
        fh.flush()
        os.fsync(fh.fileno())
        self._last_sync = time.monotonic()
        return fh

    def append(self, row: dict[str, Any]) -> None:
        """Write one complete row (checksum added) and flush it."""
        clean = {f: safe_text(str(row.get(f, ""))) for f in LIVE_FIELDS if f != CHECK_FIELD}
        clean[CHECK_FIELD] = row_check(clean, LIVE_FIELDS)
        data = encode_rows([clean], LIVE_FIELDS)
        with self._write_lock:
            if self._fh is None:
                raise LiveLogError(f"The log {self.path} is not open.")
            self._fh.write(data)
            self._fh.flush()
            now = time.monotonic()
            if now - self._last_sync >= self.fsync_s:
                os.fsync(self._fh.fileno())
                self._last_sync = now
            self.rows_written += 1

    def close(self) -> None:
        with self._write_lock:
            if self._fh is not None:
                try:
                    self._fh.flush()
                    os.fsync(self._fh.fileno())
                finally:
                    self._fh.close()
                    self._fh = None
        if self._lock.is_locked:
            self._lock.release()

    def write_summary(self, summary: dict[str, Any]) -> Path:
        path = summary_path(self.path)
        atomic_write_json(path, summary)
        return path
