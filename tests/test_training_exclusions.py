"""Training exclusions in the workspace (schema 2) and training that skips them. Fast."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from workbench.core.workspace import DB_FILE, Workspace
from workbench.core.workspace import store
from workbench.core.workspace.store import LATER_TABLES


@pytest.fixture
def ws(tmp_path: Path):
    with Workspace.create(tmp_path / "ws") as workspace:
        yield workspace


def test_exclude_include_round_trip_keys_relative_to_the_dataset(ws, tmp_path):
    root = tmp_path / "data"
    (root / "train" / "good").mkdir(parents=True)
    entry = ws.add_dataset("d", root)
    a, b = root / "train" / "good" / "a.png", root / "train" / "good" / "b.png"
    assert ws.set_excluded(entry.id, [a, b], reason="audit", scores={str(a): 3.5}) == 2
    assert ws.excluded_images(entry.id) == [a, b]
    from workbench.core.workspace.exclusions import exclusions

    rows = exclusions(ws, entry.id)
    assert [r.key for r in rows] == ["train/good/a.png", "train/good/b.png"]
    assert rows[0].score == 3.5 and rows[1].score is None and rows[0].reason == "audit"
    assert ws.set_excluded(entry.id, [a], excluded=False) == 1
    assert ws.excluded_images(entry.id) == [b]
    assert a.parent.is_dir()  # nothing on disk is touched
    ws.remove_dataset(entry.id)  # exclusions go with their dataset, and do not block its removal
    assert ws._query("SELECT COUNT(*) FROM training_exclusions")[0][0] == 0


def test_a_schema_1_workspace_is_migrated_with_a_backup(tmp_path):
    """An old workspace (no exclusions table, user_version 1) opens, gets the table, keeps its data."""
    path = tmp_path / "old"
    with Workspace.create(path) as ws:
        ws.set_setting("keep", 1)
    conn = sqlite3.connect(path / DB_FILE)
    for table in LATER_TABLES:  # everything schema 1 did not have
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with Workspace.open(path) as ws:
        assert ws._live().execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        assert ws.get_setting("keep") == 1
        entry = ws.add_dataset("d", tmp_path)
        ws.set_excluded(entry.id, [tmp_path / "x.png"])
        assert ws.excluded_images(entry.id) == [tmp_path / "x.png"]
    assert (path / f"{DB_FILE}.bak-v1").is_file()


def test_training_skips_excluded_images_and_says_how_many(sample_root):
    from workbench.core.data import load_dataset
    from workbench.core.training import train_model

    dataset = load_dataset(sample_root, category="washer")
    skipped = [r.path for r in dataset.train[:3]]
    result = train_model(dataset, "padim", {"image_size": 64, "batch_size": 8}, device="cpu", excluded=skipped)
    assert result.n_excluded == 3
    assert result.n_train + result.n_holdout == len(dataset.train) - 3
    assert result.model.metadata["training"]["n_excluded"] == 3
    with pytest.raises(ValueError, match="excluded from training"):
        train_model(dataset, "padim", {"image_size": 64}, device="cpu", excluded=[r.path for r in dataset.train])
