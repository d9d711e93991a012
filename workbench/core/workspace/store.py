"""The workspace: one folder holding a quality engineer's datasets, models, labels and settings.

Layout of a workspace folder::

    workspace.sqlite   the catalogue (datasets, models, runs, labels, settings)
    models/            one model package folder per trained model (see methods.package)
    labels/            mask PNGs drawn by the user (later)

Decisions worth knowing:

* Losing labels or models is unacceptable, so every write is one SQLite transaction
  (``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error), the database runs in WAL
  mode (readers never block the writer, a crash never leaves a torn file) with
  ``synchronous=NORMAL`` (a power cut can lose at most the last transactions, never corrupt
  the file), and foreign keys are enforced. Labels and models are protected by
  ``ON DELETE RESTRICT``: even a buggy caller cannot drop them by removing a dataset.
* A new ``workspace.sqlite`` is built under a temporary name and renamed into place, so a
  folder that has the file always holds a complete, initialised workspace.
* The schema version lives in ``PRAGMA user_version``. Opening an older workspace backs the
  database up (``workspace.sqlite.bak-v<N>``) and runs the :data:`MIGRATIONS` in one
  transaction; a newer one is refused with a message telling the user to update.
* One connection per :class:`Workspace`, opened with ``check_same_thread=False`` and every
  statement run under a :class:`threading.RLock`, so the GUI thread and a worker thread can
  share it safely. Two processes (GUI and CLI) may open the same workspace: WAL plus a busy
  timeout serialise their writes.
* Paths are stored as text. Model folders inside the workspace are stored relative to it, so
  the whole workspace folder can be moved or copied to another machine. Label keys are image
  paths relative to the dataset root (POSIX separators) for the same reason.
* Model folders are only ever deleted when they lie inside ``models/``: a model registered
  from somewhere else is unregistered, never removed from the user's disk.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.core.workspace.exclusions import add_exclusions_table

if TYPE_CHECKING:
    from workbench.core.calibration.area import InspectedArea
    from workbench.core.data import Dataset

log = logging.getLogger(__name__)

DB_FILE = "workspace.sqlite"
MODELS_DIR = "models"
LABELS_DIR = "labels"
SCHEMA_VERSION = 4  # 2: inspected_areas; 3: training_exclusions; 4: run_records
APPLICATION_ID = 0x57424E43  # "WBNC": marks the SQLite file as a workbench workspace
BUSY_TIMEOUT_S = 10.0

VERDICTS = ("OK", "NG")
RUN_RUNNING = "running"
RUN_FINISHED_STATUSES = ("ok", "failed", "cancelled")
LAYOUTS = ("auto", "mvtec", "visa", "folder")  # as accepted by workbench.core.data.load_dataset
_JUNK_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})  # OS clutter in "empty" folders

SCHEMA_SQL = """
CREATE TABLE datasets (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    root       TEXT NOT NULL,
    layout     TEXT NOT NULL,
    category   TEXT,
    added_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX datasets_root_category ON datasets (root, IFNULL(category, ''));

CREATE TABLE models (
    id          INTEGER PRIMARY KEY,
    dataset_id  INTEGER NOT NULL REFERENCES datasets (id) ON DELETE RESTRICT,
    method      TEXT NOT NULL,
    name        TEXT NOT NULL,
    path        TEXT NOT NULL UNIQUE,
    params      TEXT NOT NULL DEFAULT '{}',
    metrics     TEXT NOT NULL DEFAULT '{}',
    fit_seconds REAL,
    created_at  TEXT NOT NULL
);
CREATE INDEX models_dataset ON models (dataset_id);

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    model_id    INTEGER REFERENCES models (id) ON DELETE SET NULL,
    dataset_id  INTEGER REFERENCES datasets (id) ON DELETE SET NULL,
    status      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    message     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_model ON runs (model_id);
CREATE INDEX runs_dataset ON runs (dataset_id);

CREATE TABLE labels (
    dataset_id   INTEGER NOT NULL REFERENCES datasets (id) ON DELETE RESTRICT,
    image_path   TEXT NOT NULL,
    verdict      TEXT CHECK (verdict IN ('OK', 'NG')),
    defect_class TEXT,
    note         TEXT NOT NULL DEFAULT '',
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (dataset_id, image_path)
) WITHOUT ROWID;

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""  # schema 1; later tables come from MIGRATIONS (a new database runs them too)

# Schema 2: the inspected area (ROI / ignore region) drawn in the Threshold step, per dataset:
# the painted pixels (PNG, NULL when only polygons) and the polygons (JSON list of vertex lists
# in the original image's pixel coordinates), at the size of the image it was drawn on.
AREAS_SQL = """
CREATE TABLE inspected_areas (
    dataset_id INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('roi', 'ignore')),
    height     INTEGER NOT NULL CHECK (height > 0),
    width      INTEGER NOT NULL CHECK (width > 0),
    painted    BLOB,
    polygons   TEXT NOT NULL DEFAULT '[]',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (dataset_id, kind)
) WITHOUT ROWID
"""

# Schema 3: training exclusions (workspace/exclusions.py).
# Schema 4: run records (core.run_record) of the workspace's models, one JSON document each.
RUN_RECORDS_SQL = """
CREATE TABLE run_records (
    id          INTEGER PRIMARY KEY,
    model_id    INTEGER REFERENCES models (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX run_records_model ON run_records (model_id);
"""


def _add_run_records(conn: sqlite3.Connection) -> None:
    """Schema 3 -> 4: the run-record table."""
    for statement in RUN_RECORDS_SQL.split(";"):
        if statement.strip():
            conn.execute(statement)


# Migration hook: MIGRATIONS[n] upgrades a database from schema n to n + 1. Each runs inside the
# single transaction that also bumps user_version, so a failed upgrade leaves the old schema.
Migration = Callable[[sqlite3.Connection], None]


def _add_inspected_areas(conn: sqlite3.Connection) -> None:
    """Schema 1 -> 2: the per-dataset inspected-area table (nothing else changes)."""
    conn.execute(AREAS_SQL)


MIGRATIONS: dict[int, Migration] = {1: _add_inspected_areas, 2: add_exclusions_table, 3: _add_run_records}
#: tables added after schema 1 (tests make a schema-1 database by dropping them)
LATER_TABLES = ("inspected_areas", "training_exclusions", "run_records")


class WorkspaceError(ValueError):
    """A workspace cannot be created, opened or changed. ``str()`` names the folder, says what
    is wrong and what to do, because the GUI shows it to the user as is."""


# ----------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset registered in the workspace: where it is and how to import it.

    The images stay where the user keeps them; only the root folder is recorded.
    """

    id: int
    name: str
    root: Path
    layout: str
    category: str | None
    added_at: str

    @property
    def exists(self) -> bool:
        """False when the dataset folder was moved or deleted (or a drive is not mounted)."""
        return self.root.is_dir()


@dataclass(frozen=True)
class ModelEntry:
    """A trained model: its package folder plus what it was trained on and how well it did.

    ``path`` is absolute. A model whose folder vanished is still listed (so the user sees what
    was lost) with ``exists`` False.
    """

    id: int
    dataset_id: int
    method: str
    path: Path
    params: dict[str, Any]
    metrics: dict[str, Any]
    fit_seconds: float | None
    created_at: str
    name: str

    @property
    def exists(self) -> bool:
        return self.path.is_dir()


@dataclass(frozen=True)
class RunEntry:
    """One job (training, evaluation, export...) in the workspace history.

    ``status`` is ``"running"`` until :meth:`Workspace.finish_run` sets one of
    ``"ok"``, ``"failed"`` or ``"cancelled"``. A run left ``"running"`` by a crashed process
    stays so; the history is never rewritten behind the user's back.
    """

    id: int
    kind: str
    model_id: int | None
    dataset_id: int | None
    status: str
    started_at: str
    finished_at: str | None
    message: str


# ----------------------------------------------------------------------------- helpers


def default_workspace_dir() -> Path:
    """Where the GUI puts its workspace on first run (not created here).

    ``<user data dir>/workbench/default``, e.g. ``~/.local/share/workbench/default`` on Linux,
    ``%LOCALAPPDATA%\\workbench\\default`` on Windows.
    """
    import platformdirs

    return Path(platformdirs.user_data_dir("workbench", appauthor=False)) / "default"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _abs(path: str | os.PathLike[str]) -> Path:
    """Absolute, normalised path without resolving symlinks (mapped drives stay readable)."""
    return Path(os.path.normpath(Path(path).expanduser().absolute()))


def _json_default(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise WorkspaceError(f"Cannot store {what}: {exc}. Use plain numbers, strings, lists "
                             "and dicts.") from exc


# ----------------------------------------------------------------------------- workspace


class Workspace:
    """An open workspace folder. Use :meth:`create`, :meth:`open` or :meth:`open_or_create`.

    Thread-safe: one SQLite connection guarded by a re-entrant lock. Close it (or use it as a
    context manager) so the WAL is checkpointed into ``workspace.sqlite``.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        """Internal: use the classmethods, which validate the folder first."""
        self.path = path
        self.models_dir = path / MODELS_DIR
        self.labels_dir = path / LABELS_DIR
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> Workspace:
        """Make a new workspace in a new folder, or in an existing empty one.

        Refuses a folder that already is a workspace (open it instead) or holds other files
        (so the user's own files never end up mixed with the workspace's).
        """
        root = _abs(path)
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"Cannot create a workspace at '{root}': it is a file, not a "
                                 "folder. Choose a new or empty folder.")
        if (root / DB_FILE).exists():
            raise WorkspaceError(f"'{root}' already is a workspace ({DB_FILE} exists). Open it "
                                 "instead, or choose a new or empty folder.")
        if root.is_dir():
            other = sorted(p.name for p in root.iterdir()
                           if p.name not in _JUNK_FILES and not p.name.startswith(f".{DB_FILE}."))
            if other:
                shown = ", ".join(other[:5]) + (" ..." if len(other) > 5 else "")
                raise WorkspaceError(f"Cannot create a workspace in '{root}': the folder is not "
                                     f"empty (found {shown}). Choose a new or empty folder.")
        try:
            root.mkdir(parents=True, exist_ok=True)
            _build_database(root)  # models/ and labels/ are made by open()
        except (OSError, sqlite3.Error) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise WorkspaceError(f"Cannot create a workspace in '{root}': {reason}. "
                                 "Choose a folder you can write to.") from exc
        return cls.open(root)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Workspace:
        """Open an existing workspace, upgrading an older schema (after a backup).

        Refuses a missing folder, a folder without ``workspace.sqlite``, a damaged or foreign
        database, and a workspace written by a newer workbench.
        """
        root = _abs(path)
        db = root / DB_FILE
        if not root.exists():
            raise WorkspaceError(f"Workspace folder '{root}' does not exist. Check the path (was "
                                 "it moved or is a drive not connected?) or create a new workspace.")
        if not root.is_dir():
            raise WorkspaceError(f"'{root}' is a file, not a workspace folder. Choose the folder "
                                 f"that contains {DB_FILE}.")
        if not db.is_file():
            raise WorkspaceError(f"'{root}' is not a workspace: {DB_FILE} is missing. Choose the "
                                 f"folder that contains {DB_FILE}, or create a new workspace.")
        conn: sqlite3.Connection | None = None
        try:
            conn = _connect(db)
            _check_and_migrate(conn, db)
            (root / MODELS_DIR).mkdir(exist_ok=True)
            (root / LABELS_DIR).mkdir(exist_ok=True)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.OperationalError):  # permissions, locks, missing file
                raise WorkspaceError(f"Cannot open {db}: {exc}. Check that the folder is readable "
                                     "and writable and that no other program holds the file.") from exc
            if isinstance(exc, sqlite3.DatabaseError):
                raise WorkspaceError(f"{db} is damaged or not a workspace database ({exc}). "
                                     "Restore it from a backup, or create a new workspace.") from exc
            if isinstance(exc, OSError):
                raise WorkspaceError(f"Cannot prepare the workspace '{root}': "
                                     f"{exc.strerror or exc}. Check the folder's permissions.") from exc
            raise
        return cls(root, conn)

    @classmethod
    def open_or_create(cls, path: str | os.PathLike[str]) -> Workspace:
        """Open the workspace at ``path``, creating it when the folder is missing or empty."""
        root = _abs(path)
        if (root / DB_FILE).exists():
            return cls.open(root)
        return cls.create(root)

    def close(self) -> None:
        """Close the connection; the last close checkpoints the WAL into workspace.sqlite."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r}{', closed' if self.closed else ''})"

    # ------------------------------------------------------------------ low level

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: committed on success, rolled back on error.

        ``BEGIN IMMEDIATE`` takes the write lock up front, so a read-then-write sequence
        cannot be invalidated by another process writing in between.
        """
        with self._lock:
            conn = self._live()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            except sqlite3.OperationalError as exc:  # disk full, I/O error, locked too long
                if conn.in_transaction:
                    try:
                        conn.rollback()
                    except sqlite3.Error:
                        pass  # SQLite rolls an unfinished transaction back on the next open
                raise WorkspaceError(f"Cannot save to the workspace '{self.path}': {exc}. Nothing was "
                                     "changed; free disk space or check the drive, then try again.") from exc
            except sqlite3.DatabaseError as exc:  # corrupt pages ("database disk image is malformed")
                if conn.in_transaction:
                    try:
                        conn.rollback()
                    except sqlite3.Error:
                        pass
                raise self._damaged(exc) from exc

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._live().execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                raise WorkspaceError(f"Cannot read the workspace '{self.path}': {exc}. Check the drive and "
                                     "that no other program holds the file, then try again.") from exc
            except sqlite3.DatabaseError as exc:
                raise self._damaged(exc) from exc

    def _damaged(self, exc: sqlite3.DatabaseError) -> WorkspaceError:
        """The message for a database whose pages are corrupt (a failing drive, a bad copy)."""
        return WorkspaceError(
            f"The workspace database {self.path / DB_FILE} is damaged ({exc}). Close the workbench and "
            f"restore {DB_FILE} from a backup; or create a new workspace and add the dataset again "
            f"(trained models under '{self.path / MODELS_DIR}' are separate files and still load).")

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise WorkspaceError(f"The workspace '{self.path}' is closed. Open it again.")
        return self._conn

    # ------------------------------------------------------------------ datasets

    def add_dataset(self, name: str, root: str | os.PathLike[str], layout: str = "auto",
                    category: str | None = None) -> DatasetEntry:
        """Register a dataset folder; the images are not copied.

        Adding the same ``(root, category)`` again returns the existing entry unchanged, so
        re-importing a folder never creates duplicates that would split its labels and models.
        """
        folder = _abs(root)
        if not folder.is_dir():
            raise WorkspaceError(f"Dataset folder '{folder}' does not exist. Check the path or "
                                 "connect the drive that holds it.")
        if layout not in LAYOUTS:
            raise WorkspaceError(f"Unknown dataset layout '{layout}'; use one of "
                                 f"{', '.join(LAYOUTS)}.")
        category = category or None
        name = str(name).strip() or (f"{folder.name}/{category}" if category else folder.name)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO datasets (name, root, layout, category, added_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT DO NOTHING", (name, str(folder), layout, category, _now()))
            row = conn.execute("SELECT * FROM datasets WHERE root = ? AND category IS ?",
                               (str(folder), category)).fetchone()
        return _dataset_entry(row)

    def datasets(self) -> list[DatasetEntry]:
        return [_dataset_entry(r) for r in self._query("SELECT * FROM datasets ORDER BY id")]

    def dataset(self, id: int) -> DatasetEntry:
        rows = self._query("SELECT * FROM datasets WHERE id = ?", (int(id),))
        if not rows:
            raise WorkspaceError(f"No dataset with id {id} in workspace '{self.path}'.")
        return _dataset_entry(rows[0])

    def load_dataset(self, entry_or_id: DatasetEntry | int) -> Dataset:
        """Import the dataset's images now (raises DatasetError with a user message)."""
        from workbench.core.data import load_dataset

        entry = entry_or_id if isinstance(entry_or_id, DatasetEntry) else self.dataset(entry_or_id)
        return load_dataset(entry.root, entry.category, entry.layout)

    def remove_dataset(self, id: int, cascade: bool = False) -> None:
        """Unregister a dataset (its image folder is never touched).

        Refuses while models or labels belong to it, because both are the user's work; with
        ``cascade=True`` its models (rows, and folders inside ``models/``) and labels go too.
        Run history is kept with the dataset reference cleared.
        """
        entry = self.dataset(id)
        with self._tx() as conn:
            models = conn.execute("SELECT * FROM models WHERE dataset_id = ?", (entry.id,)).fetchall()
            n_labels = conn.execute("SELECT COUNT(*) FROM labels WHERE dataset_id = ?",
                                    (entry.id,)).fetchone()[0]
            if (models or n_labels) and not cascade:
                raise WorkspaceError(
                    f"Dataset '{entry.name}' still has {len(models)} model(s) and {n_labels} "
                    "label(s). Delete them first, or remove the dataset together with them.")
            conn.execute("DELETE FROM labels WHERE dataset_id = ?", (entry.id,))
            conn.execute("DELETE FROM models WHERE dataset_id = ?", (entry.id,))
            conn.execute("DELETE FROM datasets WHERE id = ?", (entry.id,))
        for row in models:
            self._remove_model_folder(self._model_entry(row))

    # ------------------------------------------------------------------ models

    def new_model_dir(self, method: str) -> Path:
        """A fresh, unused folder path under ``models/`` (not created), e.g.
        ``models/20261124-101500-patchcore-3f2a``: sortable by time, readable, collision-free."""
        slug = re.sub(r"[^a-z0-9_.]+", "-", method.lower()).strip("-.") or "model"
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        taken = {r[0] for r in self._query("SELECT path FROM models")}
        while True:
            candidate = self.models_dir / f"{stamp}-{slug}-{secrets.token_hex(2)}"
            if not candidate.exists() and self._store_path(candidate) not in taken:
                return candidate

    def add_model(self, dataset_id: int, method: str, path: str | os.PathLike[str],
                  params: dict[str, Any], metrics: dict[str, Any] | None = None,
                  fit_seconds: float | None = None, name: str | None = None) -> ModelEntry:
        """Register a saved model package (normally written to :meth:`new_model_dir`).

        A relative ``path`` is taken relative to the workspace folder. The folder does not
        have to exist yet, and the same folder cannot be registered twice.
        """
        stored = self._store_path(path)
        created = _now()
        if not name:
            name = f"{method} {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}"
        params_json = _dumps(params or {}, "the model parameters")
        metrics_json = _dumps(metrics or {}, "the model metrics")
        with self._tx() as conn:
            self._require_dataset(conn, dataset_id)
            clash = conn.execute("SELECT id FROM models WHERE path = ?", (stored,)).fetchone()
            if clash:
                raise WorkspaceError(f"The model folder '{self._load_path(stored)}' is already "
                                     f"registered as model {clash[0]}. Save new models to "
                                     "new_model_dir().")
            cur = conn.execute(
                "INSERT INTO models (dataset_id, method, name, path, params, metrics, fit_seconds, "
                "created_at) VALUES (?,?,?,?,?,?,?,?)",
                (int(dataset_id), method, name, stored, params_json, metrics_json,
                 None if fit_seconds is None else float(fit_seconds), created))
            model_id = cur.lastrowid
        return self.model(model_id)

    def models(self, dataset_id: int | None = None) -> list[ModelEntry]:
        if dataset_id is None:
            rows = self._query("SELECT * FROM models ORDER BY id")
        else:
            rows = self._query("SELECT * FROM models WHERE dataset_id = ? ORDER BY id",
                               (int(dataset_id),))
        return [self._model_entry(r) for r in rows]

    def model(self, id: int) -> ModelEntry:
        rows = self._query("SELECT * FROM models WHERE id = ?", (int(id),))
        if not rows:
            raise WorkspaceError(f"No model with id {id} in workspace '{self.path}'.")
        return self._model_entry(rows[0])

    def delete_model(self, model_id: int, delete_files: bool = True) -> None:
        """Unregister a model, then delete its folder.

        The row goes first (in its own transaction): if deleting files fails half way, the
        workspace never lists a half-deleted model. Only folders inside ``models/`` are
        deleted; a model registered from elsewhere is just unregistered.
        """
        with self._tx() as conn:
            entry = self._model_entry(self._require_model(conn, model_id))
            conn.execute("DELETE FROM models WHERE id = ?", (entry.id,))
        if delete_files:
            self._remove_model_folder(entry)

    def _remove_model_folder(self, entry: ModelEntry) -> None:
        folder = entry.path
        if not folder.exists():
            return
        if not folder.is_relative_to(self.models_dir) or folder == self.models_dir:
            log.info("Model %d was unregistered; its folder %s is outside %s and was kept.",
                     entry.id, folder, self.models_dir)
            return
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            log.warning("Model %d was removed from the workspace but its folder %s could not be "
                        "deleted (%s); delete it by hand.", entry.id, folder, exc)

    # ------------------------------------------------------------------ runs

    def start_run(self, kind: str, model_id: int | None = None,
                  dataset_id: int | None = None) -> int:
        """Record that a job started; returns the run id for :meth:`finish_run`."""
        with self._tx() as conn:
            if model_id is not None:
                self._require_model(conn, model_id)
            if dataset_id is not None:
                self._require_dataset(conn, dataset_id)
            cur = conn.execute(
                "INSERT INTO runs (kind, model_id, dataset_id, status, started_at) "
                "VALUES (?,?,?,?,?)", (kind, model_id, dataset_id, RUN_RUNNING, _now()))
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str, message: str = "") -> None:
        """Mark a run finished with status ``"ok"``, ``"failed"`` or ``"cancelled"``."""
        if status not in RUN_FINISHED_STATUSES:
            raise WorkspaceError(f"Unknown run status '{status}'; use one of "
                                 f"{', '.join(RUN_FINISHED_STATUSES)}.")
        with self._tx() as conn:
            cur = conn.execute("UPDATE runs SET status = ?, finished_at = ?, message = ? "
                               "WHERE id = ?", (status, _now(), str(message), int(run_id)))
            if cur.rowcount == 0:
                raise WorkspaceError(f"No run with id {run_id} in workspace '{self.path}'.")

    def runs(self, limit: int = 50) -> list[RunEntry]:
        """The most recent runs, newest first."""
        rows = self._query("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (int(limit),))
        return [RunEntry(id=r["id"], kind=r["kind"], model_id=r["model_id"],
                         dataset_id=r["dataset_id"], status=r["status"],
                         started_at=r["started_at"], finished_at=r["finished_at"],
                         message=r["message"]) for r in rows]

    # ------------------------------------------------------------------ run records

    def add_run_record(self, model_id: int | None, record: dict[str, Any]) -> int:
        """Store a run record (:mod:`workbench.core.run_record`) of a model; returns its id."""
        with self._tx() as conn:
            if model_id is not None:
                self._require_model(conn, model_id)
            cur = conn.execute("INSERT INTO run_records (model_id, kind, created_at, record) VALUES (?,?,?,?)",
                               (model_id, str(record["kind"]), str(record["created_at"]),
                                _dumps(record, "run record")))
            return int(cur.lastrowid)

    def run_records(self, model_id: int) -> list[dict[str, Any]]:
        """A model's run records, oldest first."""
        rows = self._query("SELECT record FROM run_records WHERE model_id = ? ORDER BY id", (int(model_id),))
        return [json.loads(r["record"]) for r in rows]

    # ------------------------------------------------------------------ labels

    def set_label(self, dataset_id: int, image_path: str | os.PathLike[str], verdict: str | None,
                  defect_class: str | None = None, note: str = "") -> None:
        """Store the user's verdict for one image (insert or replace).

        ``verdict`` is ``"OK"``, ``"NG"`` or None (not judged). Setting everything empty
        (no verdict, no class, no note) clears the label. The key is the image path relative
        to the dataset root when the image lies under it (see :meth:`label_key`).
        """
        if verdict is not None:
            verdict = str(verdict).upper()
            if verdict not in VERDICTS:
                raise WorkspaceError(f"Unknown verdict '{verdict}'; use 'OK', 'NG' or None.")
        defect_class = defect_class or None
        note = note or ""
        with self._tx() as conn:
            row = self._require_dataset(conn, dataset_id)
            key = self._label_key(Path(row["root"]), image_path)
            if verdict is None and defect_class is None and not note:
                conn.execute("DELETE FROM labels WHERE dataset_id = ? AND image_path = ?",
                             (int(dataset_id), key))
                return
            conn.execute(
                "INSERT INTO labels (dataset_id, image_path, verdict, defect_class, note, "
                "updated_at) VALUES (?,?,?,?,?,?) ON CONFLICT (dataset_id, image_path) DO UPDATE "
                "SET verdict = excluded.verdict, defect_class = excluded.defect_class, "
                "note = excluded.note, updated_at = excluded.updated_at",
                (int(dataset_id), key, verdict, defect_class, note, _now()))

    def labels(self, dataset_id: int) -> dict[str, dict[str, Any]]:
        """Image key -> ``{"verdict", "defect_class", "note", "updated_at"}`` for one dataset."""
        rows = self._query("SELECT * FROM labels WHERE dataset_id = ? ORDER BY image_path",
                           (int(dataset_id),))
        return {r["image_path"]: {"verdict": r["verdict"], "defect_class": r["defect_class"],
                                  "note": r["note"], "updated_at": r["updated_at"]} for r in rows}

    def label_key(self, dataset_id: int, image_path: str | os.PathLike[str]) -> str:
        """The key :meth:`labels` uses for ``image_path`` (to look an image's label up)."""
        return self._label_key(self.dataset(dataset_id).root, image_path)

    # ------------------------------------------------------------------ training exclusions

    def set_excluded(self, dataset_id: int, image_paths, excluded: bool = True, reason: str = "",
                     scores: dict[str, float] | None = None) -> int:
        """Exclude images from training (or include them again); see :mod:`.exclusions`."""
        from workbench.core.workspace.exclusions import set_excluded

        return set_excluded(self, dataset_id, image_paths, excluded, reason, scores)

    def excluded_images(self, dataset_id: int) -> list[Path]:
        """Absolute paths of the training images excluded for ``dataset_id``."""
        from workbench.core.workspace.exclusions import excluded_paths

        return excluded_paths(self, dataset_id)

    @staticmethod
    def _label_key(root: Path, image_path: str | os.PathLike[str]) -> str:
        path = Path(image_path)
        if path.is_absolute():
            path = Path(os.path.normpath(path))
            if path.is_relative_to(root):
                return path.relative_to(root).as_posix()
            return str(path)
        return Path(os.path.normpath(path)).as_posix()

    # ------------------------------------------------------------------ inspected areas

    def set_inspected_area(self, dataset_id: int, kind: str, area: "InspectedArea | None") -> None:
        """Store the dataset's ROI (``kind="roi"``) or ignore region (``"ignore"``) as drawn,
        replacing the previous one; None or an empty area removes it."""
        from workbench.core.calibration.area import KINDS

        if kind not in KINDS:
            raise WorkspaceError(f"Unknown inspected-area kind '{kind}'; use one of {', '.join(KINDS)}.")
        with self._tx() as conn:
            self._require_dataset(conn, dataset_id)
            if area is None or area.empty:
                conn.execute("DELETE FROM inspected_areas WHERE dataset_id = ? AND kind = ?", (int(dataset_id), kind))
                return
            conn.execute(
                "INSERT INTO inspected_areas (dataset_id, kind, height, width, painted, polygons, updated_at) "
                "VALUES (?,?,?,?,?,?,?) ON CONFLICT (dataset_id, kind) DO UPDATE SET height = excluded.height, "
                "width = excluded.width, painted = excluded.painted, polygons = excluded.polygons, "
                "updated_at = excluded.updated_at",
                (int(dataset_id), kind, area.shape[0], area.shape[1], area.painted_png(), area.polygons_json(),
                 _now()))

    def inspected_areas(self, dataset_id: int) -> dict[str, "InspectedArea"]:
        """``{"roi": InspectedArea, "ignore": InspectedArea}`` (only the kinds stored) of one dataset."""
        from workbench.core.calibration.area import AreaError, InspectedArea

        rows = self._query("SELECT * FROM inspected_areas WHERE dataset_id = ?", (int(dataset_id),))
        out: dict[str, InspectedArea] = {}
        for r in rows:
            where = f"{self.path / DB_FILE} (dataset {dataset_id}, {r['kind']})"
            try:
                out[r["kind"]] = InspectedArea.from_stored((r["height"], r["width"]), r["painted"], r["polygons"],
                                                           where)
            except AreaError as exc:
                raise WorkspaceError(str(exc)) from None
        return out

    # ------------------------------------------------------------------ settings

    def get_setting(self, key: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM settings WHERE key = ?", (str(key),))
        return json.loads(rows[0][0]) if rows else default

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value for this workspace (replacing any previous one)."""
        data = _dumps(value, f"setting '{key}'")
        with self._tx() as conn:
            conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) "
                         "DO UPDATE SET value = excluded.value", (str(key), data))

    # ------------------------------------------------------------------ row helpers

    def _store_path(self, path: str | os.PathLike[str]) -> str:
        """Relative (POSIX) text for folders inside the workspace, absolute text otherwise."""
        p = Path(path)
        p = _abs(self.path / p if not p.is_absolute() else p)
        if p.is_relative_to(self.path):
            return p.relative_to(self.path).as_posix()
        return str(p)

    def _load_path(self, stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else self.path / p

    def _model_entry(self, r: sqlite3.Row) -> ModelEntry:
        return ModelEntry(id=r["id"], dataset_id=r["dataset_id"], method=r["method"],
                          path=self._load_path(r["path"]), params=json.loads(r["params"]),
                          metrics=json.loads(r["metrics"]), fit_seconds=r["fit_seconds"],
                          created_at=r["created_at"], name=r["name"])

    def _require_dataset(self, conn: sqlite3.Connection, dataset_id: int) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM datasets WHERE id = ?", (int(dataset_id),)).fetchone()
        if row is None:
            raise WorkspaceError(f"No dataset with id {dataset_id} in workspace '{self.path}'.")
        return row

    def _require_model(self, conn: sqlite3.Connection, model_id: int) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM models WHERE id = ?", (int(model_id),)).fetchone()
        if row is None:
            raise WorkspaceError(f"No model with id {model_id} in workspace '{self.path}'.")
        return row


def _dataset_entry(r: sqlite3.Row) -> DatasetEntry:
    return DatasetEntry(id=r["id"], name=r["name"], root=Path(r["root"]), layout=r["layout"],
                        category=r["category"], added_at=r["added_at"])


# ----------------------------------------------------------------------------- database


def _connect(db: Path) -> sqlite3.Connection:
    """Open an existing database with the workspace's pragmas.

    The caller has checked that the file exists. A plain path rather than a ``mode=rw`` URI,
    because SQLite rejects URIs with a host part, i.e. Windows network shares (``\\\\server``).
    """
    conn = sqlite3.connect(db, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # e.g. some network file systems
            log.warning("%s: WAL mode unavailable, using journal mode %s", db, mode)
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _build_database(root: Path) -> None:
    """Write a fully initialised database under a temporary name, then rename it into place,
    so ``workspace.sqlite`` never exists half-built."""
    tmp = root / f".{DB_FILE}.{os.getpid()}.tmp"
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
        leftover.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        for statement in SCHEMA_SQL.split(";"):
            if statement.strip():
                conn.execute(statement)
        for v in range(1, SCHEMA_VERSION):  # a new database gets every later table the same way
            MIGRATIONS[v](conn)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise
    conn.close()  # last connection: checkpoints and removes the -wal/-shm files
    if (root / DB_FILE).exists():
        tmp.unlink(missing_ok=True)
        raise WorkspaceError(f"'{root}' became a workspace while this one was being created. "
                             "Open it instead.")
    os.replace(tmp, root / DB_FILE)


def _check_and_migrate(conn: sqlite3.Connection, db: Path) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if app_id != APPLICATION_ID:
        raise WorkspaceError(f"{db} is an SQLite database but not a workbench workspace. Choose "
                             "another folder, or create a new workspace.")
    if version > SCHEMA_VERSION:
        raise WorkspaceError(
            f"The workspace '{db.parent}' was written by a newer version of the workbench "
            f"(schema {version}; this version supports up to {SCHEMA_VERSION}). Update the "
            "workbench to open it.")
    if version == SCHEMA_VERSION:
        return
    missing = [v for v in range(version, SCHEMA_VERSION) if v not in MIGRATIONS]
    if version < 1 or missing:
        raise WorkspaceError(f"{db} has schema {version}, which this version cannot upgrade. "
                             "Restore it from a backup, or create a new workspace.")
    backup_path = db.with_name(f"{db.name}.bak-v{version}")
    backup = sqlite3.connect(backup_path)
    try:
        conn.backup(backup)  # the user's labels survive even a buggy migration
    finally:
        backup.close()
    conn.execute("BEGIN IMMEDIATE")
    try:
        for v in range(version, SCHEMA_VERSION):
            MIGRATIONS[v](conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    log.info("Upgraded %s from schema %d to %d (backup: %s)", db, version, SCHEMA_VERSION,
             backup_path)
