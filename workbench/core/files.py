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
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
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


def atomic_replace_dir(staging: Path, target: Path) -> None:
    """Move a fully written ``staging`` folder to ``target``, replacing any previous one.

    The old folder is first renamed aside and only deleted once the new one is in place,
    so an interruption leaves either the old model or the new one (plus a stray backup).
    """
    target = Path(target)
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
