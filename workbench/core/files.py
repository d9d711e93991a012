"""File helpers: checksums and crash-safe writes.

Crash-safe writes: write to a temporary sibling, fsync, then rename over the target.

A rename within one filesystem is atomic, so readers (and a process restarted after a
crash) always see either the old complete file or the new complete file, never a torn one.

Folders (model packages) are written to a staging sibling ``.NAME.tmp-PID-XXXX`` and swapped
in with two renames (old -> ``.NAME.old-PID``, staging -> NAME). A process killed between
the two renames leaves no NAME at all: :func:`recover_dir` puts the old folder back, and
:func:`clean_stale_siblings` removes leftovers of dead processes. Both only touch siblings
whose process (the PID in the name) is gone; on systems without a cheap liveness check
(Windows) nothing is recovered or removed automatically.

Output folders are never destroyed by accident: :func:`check_output_dir` decides whether a
command may write (or replace) a folder. A new or empty folder is fine; an existing one is
replaced only when it holds nothing but this command's own kind of output (an
:class:`OutputKind`: a model package, an export, a predict run) *and* the caller asked for it
(``overwrite=True``, the CLI's ``--overwrite``); never a folder holding anything else, and
never the input of the same command, nor a folder inside it or around it. The check runs in
:func:`atomic_replace_dir` itself, so no caller can delete a foreign folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def staging_dir(target: str | Path) -> Path:
    """A new empty folder next to ``target`` to build its replacement in (``.NAME.tmp-PID-XXXX``)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))


@contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """A staging folder for ``target`` that is removed on every exit path (error, Ctrl+C,
    a refused replace); after a successful :func:`atomic_replace_dir` it no longer exists.
    Leftovers of killed processes are removed first (they carry the dead process's PID)."""
    clean_stale_siblings(target)
    staging = staging_dir(target)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no safe signal-0 probe (os.kill(pid, 0) sends CTRL_C on Windows)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists but belongs to someone else
        return True
    return True


def _siblings(target: Path) -> list[tuple[Path, str, int]]:
    """``(path, "tmp"|"old", pid)`` for staging and backup folders left next to ``target``."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(tmp|old)-(\d+)(?:-[a-z0-9_]+)?$")
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return []
    found = []
    for p in entries:
        m = pattern.match(p.name)
        if m:
            found.append((p, m.group(1), int(m.group(2))))
    return found


def recover_dir(target: str | Path, wait_s: float = 2.0) -> bool:
    """Put the previous ``target`` folder back if a replace was killed between its two renames.

    While the process that is replacing ``target`` still runs, wait (up to ``wait_s``) for it
    to finish instead. Returns True when ``target`` exists afterwards.
    """
    target = Path(target)
    deadline = time.monotonic() + wait_s
    while not target.exists():
        backups = [(p, pid) for p, kind, pid in _siblings(target) if kind == "old" and p.is_dir()]
        if not backups:
            return False
        dead = [p for p, pid in backups if not _pid_alive(pid)]
        if dead:
            try:
                os.replace(max(dead, key=lambda p: p.stat().st_mtime), target)
                _fsync_dir(target.parent)
                continue
            except OSError:
                pass  # another reader restored it first, or it vanished: look again
        if time.monotonic() > deadline:
            return target.exists()
        time.sleep(0.02)
    return True


def clean_stale_siblings(target: str | Path) -> None:
    """Remove staging/backup folders next to ``target`` whose writing process is gone."""
    for path, _kind, pid in _siblings(Path(target)):
        if not _pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def atomic_replace_dir(staging: Path, target: Path, kind: OutputKind, *, overwrite: bool = False) -> None:
    """Move a fully written ``staging`` folder to ``target``, replacing a previous one of ``kind``.

    ``target`` is checked with :func:`check_output_dir` first: an existing folder is only
    replaced when it is ``kind``'s own output and ``overwrite`` is set (OutputFolderError
    otherwise). The old folder is first renamed aside and only deleted once the new one is in
    place, so an interruption leaves either the old model or the new one (plus a stray backup).
    """
    target = Path(target)
    check_output_dir(target, kind, overwrite=overwrite)
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.old-{os.getpid()}")
        if backup.exists():
            shutil.rmtree(backup)
        os.replace(target, backup)
    os.replace(staging, target)
    _fsync_dir(target.parent)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- output folders
class OutputFolderError(ValueError):
    """A command was asked to write into a folder it must not touch. ``str()`` says which and why."""


_HARMLESS = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class OutputKind:
    """One kind of folder a command writes, so that only that command's own output is replaced.

    ``files`` are the names such a folder may hold (besides our own hidden temporary files);
    ``recognise`` says whether a folder holding only such names really is one (it reads and
    validates the folder's description file, e.g. ``model.json``).
    """

    label: str
    files: frozenset[str]
    recognise: Callable[[Path], bool]
    extra_files: Callable[[str], bool] = lambda name: False

    @property
    def a_label(self) -> str:
        return f"{'an' if self.label[0] in 'aeiou' else 'a'} {self.label}"


def _own_temp_file(name: str, kind: OutputKind) -> bool:
    """Our hidden leftovers inside a folder: ``.model.json.XXXX.tmp`` from an interrupted atomic write."""
    return name.endswith(".tmp") and any(name.startswith(f".{own}.") for own in kind.files)


def _related(a: Path, b: Path) -> str | None:
    """How folder ``a`` relates to folder ``b`` after resolving symbolic links, or None."""
    try:
        ra, rb = a.resolve(strict=False), b.resolve(strict=False)
    except (OSError, RuntimeError):  # a link cycle: compare the paths as given
        ra, rb = a.absolute(), b.absolute()
    if ra == rb:
        return "is"
    if rb in ra.parents:
        return "is inside"
    if ra in rb.parents:
        return "contains"
    return None


def check_output_dir(target: str | Path, kind: OutputKind, *, overwrite: bool = False,
                     inputs: Sequence[tuple[str, str | Path]] = ()) -> bool:
    """Raise :class:`OutputFolderError` unless ``target`` may receive a new ``kind`` output.

    ``inputs`` are ``(what, folder)`` pairs read by the same command (the dataset, the model):
    the output may be none of them, nor inside or around one. Returns True when ``target``
    exists and holds a previous output that will be replaced.
    """
    target = Path(target)
    where = f"Cannot write the {kind.label} to '{target}'"
    for what, folder in inputs:
        relation = _related(target, Path(folder))
        if relation:
            raise OutputFolderError(f"{where}: it {relation} {what} '{folder}' that this command reads. "
                                    "Choose a new folder outside it.")
    if target.is_symlink():
        raise OutputFolderError(f"{where}: it is a symbolic link. Give the real folder, or a new one.")
    if not target.exists():
        return False
    if not target.is_dir():
        raise OutputFolderError(f"{where}: it is a file, not a folder. Choose a new folder.")
    try:
        names = [p.name for p in target.iterdir()]
    except OSError as exc:
        raise OutputFolderError(f"{where}: it cannot be listed ({exc.strerror or exc}).") from exc
    names = [n for n in names if n not in _HARMLESS and not _own_temp_file(n, kind)]
    if not names:
        return False
    foreign = sorted(n for n in names if n not in kind.files and not kind.extra_files(n))
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise OutputFolderError(f"{where}: the folder already holds other files ({shown}), which would be "
                                "lost. Choose a new or empty folder.")
    if not kind.recognise(target):
        raise OutputFolderError(f"{where}: the folder holds files that are not a valid {kind.label}, which "
                                "would be lost. Choose a new or empty folder.")
    if not overwrite:
        raise OutputFolderError(f"{where}: it already holds {kind.a_label}. Choose a new folder, or replace "
                                "it on purpose (the command line's --overwrite).")
    return True
