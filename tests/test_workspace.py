"""Workspace store: round trips, safety rules and clear errors. Fast: SQLite in tmp_path only."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from workbench.core.workspace import (
    DB_FILE,
    SCHEMA_VERSION,
    Workspace,
    WorkspaceError,
    default_workspace_dir,
)
from workbench.core.workspace import store
from workbench.core.workspace.store import LATER_TABLES

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "workbench" / "sample_data"


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "images" / "bottle"
    (root / "good").mkdir(parents=True)
    (root / "scratch").mkdir()
    return root


@pytest.fixture
def ws(tmp_path: Path):
    with Workspace.create(tmp_path / "ws") as workspace:
        yield workspace


def _fake_model(ws: Workspace, method: str = "patchcore") -> Path:
    folder = ws.new_model_dir(method)
    folder.mkdir()
    (folder / "model.json").write_text("{}")
    return folder


# ----------------------------------------------------------------------------- create / open


def test_create_makes_layout_and_wal(tmp_path: Path) -> None:
    with Workspace.create(tmp_path / "new" / "ws") as ws:
        assert (ws.path / DB_FILE).is_file()
        assert ws.models_dir.is_dir() and ws.labels_dir.is_dir()
        conn = ws._live()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # WAL is a property of the file: a plain connection sees it too
    plain = sqlite3.connect(tmp_path / "new" / "ws" / DB_FILE)
    assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plain.close()


def test_create_in_empty_existing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / ".DS_Store").write_bytes(b"")
    Workspace.create(folder).close()
    assert (folder / DB_FILE).is_file()


def test_create_refuses_existing_workspace_and_non_empty_folder(tmp_path: Path) -> None:
    Workspace.create(tmp_path / "ws").close()
    with pytest.raises(WorkspaceError, match="already is a workspace.*Open it"):
        Workspace.create(tmp_path / "ws")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(WorkspaceError, match="not empty.*notes.txt"):
        Workspace.create(busy)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]


def test_open_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="does not exist"):
        Workspace.open(tmp_path / "nowhere")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(WorkspaceError, match=f"not a workspace: {DB_FILE} is missing"):
        Workspace.open(plain)
    assert not (plain / DB_FILE).exists()  # opening never creates a database
    (plain / DB_FILE).write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(WorkspaceError, match="damaged"):
        Workspace.open(plain)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    sqlite3.connect(foreign / DB_FILE).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(WorkspaceError, match="not a workbench workspace"):
        Workspace.open(foreign)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Workspace.create(tmp_path / "ws").close()
    conn = sqlite3.connect(tmp_path / "ws" / DB_FILE)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(WorkspaceError, match="newer version.*Update the workbench"):
        Workspace.open(tmp_path / "ws")


def test_migration_hook_backs_up_then_upgrades(tmp_path: Path, monkeypatch) -> None:
    with Workspace.create(tmp_path / "ws") as ws:
        ws.set_setting("keep", 1)

    def add_column(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE models ADD COLUMN threshold REAL")

    monkeypatch.setattr(store, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(store.MIGRATIONS, SCHEMA_VERSION, add_column)
    with Workspace.open(tmp_path / "ws") as ws:
        conn = ws._live()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert "threshold" in [r[1] for r in conn.execute("PRAGMA table_info(models)")]
        assert ws.get_setting("keep") == 1
    assert (tmp_path / "ws" / f"{DB_FILE}.bak-v{SCHEMA_VERSION}").is_file()


def test_open_or_create(tmp_path: Path) -> None:
    with Workspace.open_or_create(tmp_path / "ws") as ws:
        ws.set_setting("theme", "dark")
    with Workspace.open_or_create(tmp_path / "ws") as ws:
        assert ws.get_setting("theme") == "dark"


def test_closed_workspace_says_so(ws: Workspace) -> None:
    ws.close()
    with pytest.raises(WorkspaceError, match="closed"):
        ws.datasets()


def test_default_workspace_dir() -> None:
    path = default_workspace_dir()
    assert path.name == "default" and path.parent.name == "workbench"


# ----------------------------------------------------------------------------- round trip


def test_reopen_restores_everything(tmp_path: Path, data_root: Path) -> None:
    with Workspace.create(tmp_path / "ws") as ws:
        ds = ws.add_dataset("Bottles", data_root, "folder")
        folder = _fake_model(ws)
        model = ws.add_model(ds.id, "patchcore", folder, {"backbone": "resnet18", "k": 3},
                             metrics={"image_auroc": 0.9}, fit_seconds=12.5, name="first")
        run = ws.start_run("train", model_id=model.id, dataset_id=ds.id)
        ws.finish_run(run, "ok", "trained in 12.5 s")
        ws.set_label(ds.id, data_root / "scratch" / "001.png", "NG", "scratch", "deep")
        ws.set_label(ds.id, "good/002.png", "ok")
        ws.set_setting("threshold", {"value": 0.42, "per_class": [1, 2]})

    with Workspace.open(tmp_path / "ws") as ws:
        [entry] = ws.datasets()
        assert entry == ds and entry.root == data_root and entry.layout == "folder"
        assert entry.category is None and entry.exists
        [m] = ws.models()
        assert m == model and m.name == "first" and m.path == folder and m.exists
        assert m.params == {"backbone": "resnet18", "k": 3}
        assert m.metrics == {"image_auroc": 0.9} and m.fit_seconds == 12.5
        [r] = ws.runs()
        assert (r.id, r.kind, r.model_id, r.dataset_id, r.status) == (run, "train", m.id, ds.id, "ok")
        assert r.finished_at is not None and r.message == "trained in 12.5 s"
        labels = ws.labels(ds.id)
        assert set(labels) == {"scratch/001.png", "good/002.png"}
        assert labels["scratch/001.png"]["verdict"] == "NG"
        assert labels["scratch/001.png"]["defect_class"] == "scratch"
        assert labels["scratch/001.png"]["note"] == "deep"
        assert labels["good/002.png"]["verdict"] == "OK"
        assert ws.get_setting("threshold") == {"value": 0.42, "per_class": [1, 2]}
        assert ws.get_setting("missing", "fallback") == "fallback"


def test_model_paths_are_stored_relative(tmp_path: Path, data_root: Path) -> None:
    """The workspace folder can be moved without breaking its models."""
    with Workspace.create(tmp_path / "ws") as ws:
        ds = ws.add_dataset("b", data_root, "folder")
        folder = _fake_model(ws)
        ws.add_model(ds.id, "padim", folder, {})
    (tmp_path / "ws").rename(tmp_path / "moved")
    with Workspace.open(tmp_path / "moved") as ws:
        [m] = ws.models()
        assert m.path == tmp_path / "moved" / "models" / folder.name and m.exists


def test_duplicate_dataset_returns_existing(ws: Workspace, data_root: Path) -> None:
    a = ws.add_dataset("Bottles", data_root, "folder")
    b = ws.add_dataset("Other name", str(data_root) + "/", "auto")
    assert a == b and len(ws.datasets()) == 1
    c = ws.add_dataset("Bottles cat", data_root.parent, "mvtec", category="bottle")
    d = ws.add_dataset("again", data_root.parent, "mvtec", category="bottle")
    assert c == d and c.id != a.id and len(ws.datasets()) == 2


def test_add_dataset_checks_folder_and_layout(ws: Workspace, tmp_path: Path, data_root: Path) -> None:
    with pytest.raises(WorkspaceError, match="does not exist"):
        ws.add_dataset("x", tmp_path / "missing", "folder")
    with pytest.raises(WorkspaceError, match="Unknown dataset layout"):
        ws.add_dataset("x", data_root, "coco")
    with pytest.raises(WorkspaceError, match="No dataset with id 99"):
        ws.dataset(99)


def test_new_model_dir_is_unique(ws: Workspace) -> None:
    dirs = {ws.new_model_dir("PatchCore / v2") for _ in range(20)}
    assert len(dirs) == 20
    for d in dirs:
        assert d.parent == ws.models_dir and not d.exists()
        assert "-patchcore-v2-" in d.name


def test_model_updates(ws: Workspace, data_root: Path) -> None:
    ds = ws.add_dataset("b", data_root, "folder")
    folder = _fake_model(ws)
    m = ws.add_model(ds.id, "patchcore", folder, {"k": 1}, metrics={"image_auroc": 0.8})
    assert m.name.startswith("patchcore ")
    assert m.metrics == {"image_auroc": 0.8}
    with pytest.raises(WorkspaceError, match="already registered"):
        ws.add_model(ds.id, "patchcore", folder, {})
    with pytest.raises(WorkspaceError, match="No dataset with id 42"):
        ws.add_model(42, "patchcore", ws.new_model_dir("patchcore"), {})
    with pytest.raises(WorkspaceError, match="Cannot store the model parameters"):
        ws.add_model(ds.id, "patchcore", ws.new_model_dir("patchcore"), {"x": object()})
    other = ws.add_dataset("c", data_root.parent, "folder", category="bottle")
    assert [x.id for x in ws.models(dataset_id=other.id)] == []
    assert [x.id for x in ws.models(dataset_id=ds.id)] == [m.id]


def test_vanished_model_folder_is_still_listed(ws: Workspace, data_root: Path) -> None:
    ds = ws.add_dataset("b", data_root, "folder")
    folder = _fake_model(ws)
    ws.add_model(ds.id, "padim", folder, {})
    (folder / "model.json").unlink()
    folder.rmdir()
    [m] = ws.models()
    assert not m.exists


def test_delete_model_removes_row_and_folder(ws: Workspace, data_root: Path) -> None:
    ds = ws.add_dataset("b", data_root, "folder")
    folder = _fake_model(ws)
    m = ws.add_model(ds.id, "patchcore", folder, {})
    run = ws.start_run("evaluate", model_id=m.id, dataset_id=ds.id)
    ws.delete_model(m.id)
    assert ws.models() == [] and not folder.exists()
    assert ws.runs()[0].id == run and ws.runs()[0].model_id is None  # history kept
    with pytest.raises(WorkspaceError, match="No model with id"):
        ws.model(m.id)


def test_delete_model_keeps_files_when_asked_or_outside(ws: Workspace, data_root: Path,
                                                         tmp_path: Path) -> None:
    ds = ws.add_dataset("b", data_root, "folder")
    kept = _fake_model(ws)
    ws.delete_model(ws.add_model(ds.id, "padim", kept, {}).id, delete_files=False)
    assert kept.is_dir()
    outside = tmp_path / "my_models" / "m1"
    outside.mkdir(parents=True)
    ws.delete_model(ws.add_model(ds.id, "padim", outside, {}).id)
    assert outside.is_dir()  # never delete a user's folder outside models/
    assert ws.models() == []


def test_remove_dataset_refused_while_models_or_labels(ws: Workspace, data_root: Path) -> None:
    ds = ws.add_dataset("b", data_root, "folder")
    folder = _fake_model(ws)
    ws.add_model(ds.id, "patchcore", folder, {})
    with pytest.raises(WorkspaceError, match="1 model"):
        ws.remove_dataset(ds.id)
    assert ws.datasets() == [ds] and folder.is_dir()

    labelled = ws.add_dataset("c", data_root.parent, "folder", category="bottle")
    ws.set_label(labelled.id, "good/1.png", "OK")
    with pytest.raises(WorkspaceError, match="1 label"):
        ws.remove_dataset(labelled.id)

    ws.remove_dataset(ds.id, cascade=True)
    assert not folder.exists() and ws.models() == []
    ws.remove_dataset(labelled.id, cascade=True)
    assert ws.datasets() == [] and ws.labels(labelled.id) == {}
    assert data_root.is_dir()  # the images are never touched
    empty = ws.add_dataset("d", data_root, "folder")
    ws.remove_dataset(empty.id)
    assert ws.datasets() == []


def test_labels_upsert_and_clear(ws: Workspace, data_root: Path, tmp_path: Path) -> None:
    ds = ws.add_dataset("b", data_root, "folder")
    ws.set_label(ds.id, "scratch/a.png", "NG", "scratch")
    ws.set_label(ds.id, data_root / "scratch" / "a.png", "OK", note="false alarm")
    labels = ws.labels(ds.id)
    assert list(labels) == ["scratch/a.png"]
    assert labels["scratch/a.png"]["verdict"] == "OK"
    assert labels["scratch/a.png"]["defect_class"] is None
    assert labels["scratch/a.png"]["note"] == "false alarm"
    assert ws.label_key(ds.id, data_root / "scratch" / "a.png") == "scratch/a.png"

    elsewhere = tmp_path / "elsewhere.png"
    ws.set_label(ds.id, elsewhere, None, note="seen")  # outside the root: absolute key
    assert str(elsewhere) in ws.labels(ds.id)

    ws.set_label(ds.id, "scratch/a.png", None)  # all empty: label cleared
    assert list(ws.labels(ds.id)) == [str(elsewhere)]
    with pytest.raises(WorkspaceError, match="Unknown verdict"):
        ws.set_label(ds.id, "x.png", "maybe")
    with pytest.raises(WorkspaceError, match="No dataset with id"):
        ws.set_label(999, "x.png", "OK")


def test_runs_newest_first_and_validated(ws: Workspace) -> None:
    ids = [ws.start_run(f"job{i}") for i in range(5)]
    ws.finish_run(ids[0], "failed", "out of memory")
    runs = ws.runs(limit=3)
    assert [r.id for r in runs] == ids[::-1][:3]
    assert all(r.status == "running" and r.finished_at is None for r in runs)
    assert ws.runs()[-1].status == "failed" and ws.runs()[-1].message == "out of memory"
    with pytest.raises(WorkspaceError, match="Unknown run status"):
        ws.finish_run(ids[1], "done")
    with pytest.raises(WorkspaceError, match="No run with id"):
        ws.finish_run(12345, "ok")
    with pytest.raises(WorkspaceError, match="No model with id"):
        ws.start_run("train", model_id=7)


def test_failed_transaction_rolls_back(ws: Workspace, data_root: Path) -> None:
    ds = ws.add_dataset("b", data_root, "folder")
    with pytest.raises(RuntimeError):
        with ws._tx() as conn:
            conn.execute("INSERT INTO settings (key, value) VALUES ('half', '1')")
            raise RuntimeError("boom")
    assert ws.get_setting("half") is None
    ws.set_setting("after", True)  # the connection is still usable
    assert ws.get_setting("after") is True and ws.datasets() == [ds]


# ----------------------------------------------------------------------------- threads


def test_concurrent_use_from_worker_thread(tmp_path: Path, data_root: Path) -> None:
    with Workspace.create(tmp_path / "ws") as ws:
        ds = ws.add_dataset("b", data_root, "folder")
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for i in range(100):
                    run = ws.start_run("train", dataset_id=ds.id)
                    ws.set_label(ds.id, f"good/{i}.png", "OK")
                    ws.finish_run(run, "ok")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=worker)
        thread.start()
        for i in range(100):  # the GUI thread keeps reading and writing meanwhile
            ws.set_setting(f"k{i}", i)
            ws.labels(ds.id)
            ws.runs(limit=5)
        thread.join(timeout=30)
        assert not thread.is_alive() and errors == []
        assert len(ws.labels(ds.id)) == 100 and len(ws.runs(limit=500)) == 100

        # a second connection (e.g. the CLI in another process) sees committed data
        with Workspace.open(tmp_path / "ws") as other:
            assert len(other.labels(ds.id)) == 100
            other.set_setting("from_other", "yes")
        assert ws.get_setting("from_other") == "yes"


# ----------------------------------------------------------------------------- sample data


def test_load_dataset_from_sample_data(ws: Workspace) -> None:
    if not SAMPLE_DATA.is_dir():
        pytest.skip("sample_data/ is not in this checkout yet (generated by another step)")
    from workbench.core.data import list_categories

    categories = list_categories(SAMPLE_DATA)
    category = categories[0] if categories else None
    entry = ws.add_dataset("Sample", SAMPLE_DATA, "auto", category=category)
    dataset = ws.load_dataset(entry)
    assert dataset.train and dataset.records
    assert ws.load_dataset(entry.id).records == dataset.records


# ----------------------------------------------------------------------------- inspected areas
def test_inspected_area_round_trip_with_polygons(tmp_path: Path) -> None:
    """ROI / ignore regions per dataset: painted pixels and polygons (vertex lists in original
    image coordinates, rasterised with fillPoly into the same mask) survive closing and reopening."""
    import numpy as np

    from workbench.core.calibration.area import InspectedArea, rasterize_polygons

    data = tmp_path / "data"
    data.mkdir()
    with Workspace.create(tmp_path / "ws") as ws:
        a = ws.add_dataset("a", data, category="one")
        b = ws.add_dataset("b", data, category="two")
        painted = np.zeros((48, 64), bool)
        painted[40:44, 50:60] = True
        polygon = [(5.0, 5.0), (30.0, 6.0), (18.0, 30.0)]
        ignore = InspectedArea.from_mask(painted | rasterize_polygons([polygon], (48, 64)), [polygon])
        roi = InspectedArea((48, 64), None, [[(0, 0), (63, 0), (63, 47), (0, 47)]])
        ws.set_inspected_area(a.id, "ignore", ignore)
        ws.set_inspected_area(a.id, "roi", roi)
        with pytest.raises(WorkspaceError, match="kind"):
            ws.set_inspected_area(a.id, "mask", ignore)
    with Workspace.open(tmp_path / "ws") as ws:
        areas = ws.inspected_areas(a.id)
        assert set(areas) == {"roi", "ignore"} and ws.inspected_areas(b.id) == {}
        assert areas["ignore"].polygons == (tuple(polygon),)
        np.testing.assert_array_equal(areas["ignore"].mask(), ignore.mask())
        assert areas["ignore"].mask()[42, 55] and areas["ignore"].mask()[10, 15] and not areas["ignore"].mask()[45, 5]
        assert areas["roi"].mask().all() and areas["roi"].painted is None  # a polygon only: no PNG stored
        ws.set_inspected_area(a.id, "roi", None)  # removing one kind keeps the other
        assert set(ws.inspected_areas(a.id)) == {"ignore"}
        conn = ws._live()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_inspected_area_polygon_cut_by_the_eraser_is_kept_as_pixels() -> None:
    from workbench.core.calibration.area import AreaError, InspectedArea, rasterize_polygons

    polygon = [(2.0, 2.0), (20.0, 2.0), (20.0, 20.0), (2.0, 20.0)]
    area = InspectedArea.from_mask(rasterize_polygons([polygon], (32, 32)), [polygon])
    assert area.polygons == (tuple(polygon),)
    erased = area.mask()
    erased[10, 10] = False
    cut = area.with_mask(erased)
    assert cut.polygons == () and not cut.mask()[10, 10] and cut.mask()[5, 5]
    with pytest.raises(AreaError, match="3 or more"):
        InspectedArea((8, 8), None, [[(0, 0), (1, 1)]])
    with pytest.raises(AreaError, match="finite"):
        InspectedArea((8, 8), None, [[(0, 0), (1, float("nan")), (2, 2)]])


def test_schema_1_workspace_is_migrated_and_keeps_its_labels(tmp_path: Path) -> None:
    """A workspace written before inspected areas existed (schema 1) opens, is backed up,
    keeps every label, and can then store areas."""
    import numpy as np

    from workbench.core.calibration.area import InspectedArea

    data = tmp_path / "data"
    data.mkdir()
    with Workspace.create(tmp_path / "ws") as ws:
        entry = ws.add_dataset("a", data)
        ws.set_label(entry.id, data / "x.png", "NG", "hole", "keep me")
    conn = sqlite3.connect(tmp_path / "ws" / DB_FILE)  # as schema 1 had it: no area table
    for table in LATER_TABLES:  # everything schema 1 did not have
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws._live().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert ws.labels(entry.id)["x.png"]["note"] == "keep me"
        mask = np.zeros((8, 8), bool)
        mask[1:3, 1:3] = True
        ws.set_inspected_area(entry.id, "ignore", InspectedArea.from_mask(mask))
        np.testing.assert_array_equal(ws.inspected_areas(entry.id)["ignore"].mask(), mask)
    assert (tmp_path / "ws" / f"{DB_FILE}.bak-v1").is_file()
