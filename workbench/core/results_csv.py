"""The results CSV of ``predict``: readable by people, locked while written, checked on resume.

``scores.csv`` stays a plain CSV that opens in any spreadsheet (one row per image, the columns
in :data:`CSV_FIELDS`). Three things make it survive a line PC:

* **A lock.** While a run writes, it holds an OS-level lock (``filelock``: ``fcntl.flock`` on
  Linux/macOS, ``msvcrt.locking`` on Windows) on ``.scores.csv.lock``; a second run on the same
  folder is refused with :class:`~workbench.core.formats.PredictRunError` instead of writing
  every row twice. The OS drops the lock when a process dies, so a killed run never blocks
  the next one.
* **A checksum per row.** The last column, ``row_check``, is the CRC-32 of the row's other
  fields. A resume parses the file line by line (a stray quote damages one line, never the
  rest of the file), keeps the rows that parse and match their checksum (the first one of a
  path, if a path is there twice), and when anything was dropped rewrites the file atomically
  with the good rows only: those images are scored again, once. Nothing is scored twice.
* **Whole rows.** Each batch's rows are written with one ``write`` call and fsynced; a kill
  mid-write leaves at most a torn last line, which fails its checksum and is dropped.

File names are shown safely: bytes that are not UTF-8 (possible on Linux) and control
characters (a newline in a name) become backslash escapes (``\\xff``, ``\\n``), so every row is
one printable line. The same text is the key that a resume matches.
"""

from __future__ import annotations

import csv
import io
import os
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from workbench.core.files import atomic_write_bytes
from workbench.core.formats import PredictRunError

# One list of columns; the checksum column is always last and covers all the others.
# decision: OK / REVIEW / NG, "error" (no finite score, overlay not writable), "unreadable", or ""
# (the model has no threshold); regions / defect_area_px: connected defect regions and their pixels
# after the minimum area; note: e.g. that the ROI/ignore masks were resized to this image's size;
# error: why the image could not be scored.
CSV_FIELDS = ["path", "score", "decision", "regions", "defect_area_px", "note", "error", "row_check"]
CHECK_FIELD = "row_check"
_CONTROL = {c: f"\\x{c:02x}" for c in range(32)} | {0x7f: "\\x7f", 10: "\\n", 13: "\\r", 9: "\\t"}


def safe_text(text: str) -> str:
    """``text`` with undecodable bytes (surrogate escapes) and control characters as backslash escapes."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.translate(_CONTROL)


def display_path(path: str | os.PathLike[str]) -> str:
    """How a file name is written to the CSV and the report: :func:`safe_text` of ``os.fsdecode``."""
    return safe_text(os.fsdecode(path))


def row_check(row: dict[str, Any], fields: Sequence[str] = CSV_FIELDS) -> str:
    """CRC-32 (hex) of the row's fields in column order, separated by a character no field holds.
    ``fields``: the columns of the file (another CSV with the same conventions, e.g. the live log)."""
    text = "\x1f".join(str(row.get(f, "")) for f in fields if f != CHECK_FIELD)
    return f"{zlib.crc32(text.encode('utf-8')):08x}"


class ResultsCsv:
    """``scores.csv`` of one output folder, locked for as long as the ``with`` block runs."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.repaired = 0  # damaged rows dropped by the last open(resume=True)
        self._lock = FileLock(str(self.path.with_name(f".{self.path.name}.lock")), timeout=0)
        self._rows: list[dict[str, str]] = []

    def __enter__(self) -> ResultsCsv:
        try:
            self._lock.acquire()
        except Timeout:
            raise PredictRunError(
                f"Another 'predict' is writing to {self.path.parent} right now. Wait until it has finished, "
                "or choose another output folder.") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def has_rows(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    def open(self, resume: bool) -> set[str]:
        """Start a new CSV, or keep the valid rows of the existing one; returns their paths."""
        if not (resume and self.has_rows()):
            atomic_write_bytes(self.path, _encode([dict(zip(CSV_FIELDS, CSV_FIELDS))]))
            self._rows = []
            return set()
        self._rows, dropped, header_ok = _read_valid(self.path)
        self.repaired = dropped
        if dropped or not header_ok:
            atomic_write_bytes(self.path, _encode([dict(zip(CSV_FIELDS, CSV_FIELDS)), *self._rows]))
        return {row["path"] for row in self._rows}

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Add complete rows (with their checksums) in one write, flushed to disk."""
        clean = [{f: safe_text(str(row.get(f, ""))) for f in CSV_FIELDS if f != CHECK_FIELD} for row in rows]
        for row in clean:
            row[CHECK_FIELD] = row_check(row)
        data = _encode(clean)
        with open(self.path, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self._rows.extend(clean)

    def rows(self) -> list[dict[str, str]]:
        return list(self._rows)


def read_valid_rows(path: str | Path, fields: Sequence[str] = CSV_FIELDS) -> list[dict[str, str]]:
    """The rows of a ``scores.csv`` (or another CSV with ``fields``, the checksum last) that parse
    and match their checksum (damaged lines left out)."""
    return _read_valid(Path(path), fields)[0]


def encode_rows(rows: Iterable[dict[str, Any]], fields: Sequence[str] = CSV_FIELDS) -> bytes:
    """Complete CSV lines (UTF-8) of ``rows`` in column order ``fields``."""
    return _encode(rows, fields)


def _encode(rows: Iterable[dict[str, Any]], fields: Sequence[str] = CSV_FIELDS) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _read_valid(path: Path, fields: Sequence[str] = CSV_FIELDS) -> tuple[list[dict[str, str]], int, bool]:
    """(valid rows, number of damaged or repeated lines dropped, whether the header is ours).

    Each line is parsed on its own, so an unbalanced quote cannot swallow the lines after it.
    A damaged header is rewritten when rows of ours follow it; a file none of whose rows is
    ours (another version's or another tool's CSV) is refused.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PredictRunError(f"{path} cannot be read ({exc.strerror or exc}).") from exc
    lines = data.split(b"\n")
    fields = list(fields)
    header_ok = _parse_line(lines[0]) == fields
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    dropped = 0
    for raw in lines[1:]:
        if not raw.strip():
            continue
        parsed = _parse_line(raw)
        row = dict(zip(fields, parsed)) if parsed is not None and len(parsed) == len(fields) else None
        key = row.get("path") if row is not None else None  # predict keys rows by path; other logs repeat names
        if row is None or row[CHECK_FIELD] != row_check(row, fields) or (key is not None and key in seen):
            dropped += 1
            continue
        if key is not None:
            seen.add(key)
        rows.append(row)
    if not header_ok and dropped and not rows:  # not a damaged file of ours: another version's or tool's
        shown = lines[0][:80].decode("utf-8", "backslashreplace")
        raise PredictRunError(f"{path} has the columns of another version or tool ({shown}). Choose another "
                              "output folder, or start over (the CLI's --restart).")
    return rows, dropped, header_ok


def _parse_line(raw: bytes) -> list[str] | None:
    """One CSV line as fields, or None when it is not valid UTF-8 or not one well-formed record."""
    try:
        text = raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        return None
    if '"' not in text:  # the common case: no quoting, so the fields are exactly the comma-separated parts
        return text.split(",")
    try:
        records = list(csv.reader([text], strict=True))
    except csv.Error:
        return None
    return records[0] if len(records) == 1 else None
