"""Training images the user excluded (after a training-set audit), stored in the workspace.

Why a table and not deleting or moving files: the images are the user's data, an exclusion is
a judgement that may be reversed (include the image again), and the same folder may be used
by other datasets or tools. Training reads the table and skips the images
(:func:`workbench.core.training.train_model` ``excluded=``); nothing on disk changes.

Keys are image paths relative to the dataset root (POSIX), like the labels' keys, so a
workspace moved to another machine keeps its exclusions. Rows go when their dataset is
removed from the workspace (``ON DELETE CASCADE``): they mean nothing without it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.core.workspace.store import Workspace

EXCLUSIONS_SQL = """
CREATE TABLE training_exclusions (
    dataset_id  INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    image_path  TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    score       REAL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (dataset_id, image_path)
) WITHOUT ROWID
"""


def add_exclusions_table(conn: sqlite3.Connection) -> None:
    """Migration of schema 2 -> 3: the table of excluded training images."""
    conn.execute(EXCLUSIONS_SQL)


@dataclass(frozen=True)
class Exclusion:
    """One excluded image: ``key`` relative to the dataset root, ``path`` absolute."""

    key: str
    path: Path
    reason: str
    score: float | None
    updated_at: str


def set_excluded(ws: "Workspace", dataset_id: int, image_paths: Iterable[str | os.PathLike[str]],
                 excluded: bool = True, reason: str = "", scores: dict[str, float] | None = None) -> int:
    """Exclude (or include again) images of a dataset in one transaction; returns how many
    rows changed. ``scores`` (path -> audit score) is stored with the exclusion for the record."""
    from workbench.core.workspace.store import _now

    scores = {os.fspath(k): float(v) for k, v in (scores or {}).items()}
    changed = 0
    with ws._tx() as conn:
        row = ws._require_dataset(conn, dataset_id)
        root = Path(row["root"])
        for image_path in image_paths:
            key = ws._label_key(root, image_path)
            if excluded:
                score = scores.get(os.fspath(image_path))
                cur = conn.execute(
                    "INSERT INTO training_exclusions (dataset_id, image_path, reason, score, updated_at) "
                    "VALUES (?,?,?,?,?) ON CONFLICT (dataset_id, image_path) DO UPDATE SET "
                    "reason = excluded.reason, score = excluded.score, updated_at = excluded.updated_at",
                    (int(dataset_id), key, str(reason), score, _now()))
            else:
                cur = conn.execute("DELETE FROM training_exclusions WHERE dataset_id = ? AND image_path = ?",
                                   (int(dataset_id), key))
            changed += cur.rowcount
    return changed


def exclusions(ws: "Workspace", dataset_id: int) -> list[Exclusion]:
    """Every excluded image of a dataset, sorted by key."""
    root = ws.dataset(dataset_id).root
    rows = ws._query("SELECT * FROM training_exclusions WHERE dataset_id = ? ORDER BY image_path",
                     (int(dataset_id),))
    return [Exclusion(r["image_path"], _absolute(root, r["image_path"]), r["reason"], r["score"], r["updated_at"])
            for r in rows]


def excluded_paths(ws: "Workspace", dataset_id: int) -> list[Path]:
    """Absolute paths of the excluded images (what ``train_model(excluded=...)`` takes)."""
    return [e.path for e in exclusions(ws, dataset_id)]


def _absolute(root: Path, key: str) -> Path:
    path = Path(key)
    return path if path.is_absolute() else Path(root) / path


__all__ = ["EXCLUSIONS_SQL", "Exclusion", "add_exclusions_table", "excluded_paths", "exclusions", "set_excluded"]
