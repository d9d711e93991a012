"""Run records: every job writes one; a training record re-runs to bit-identical scores on CPU."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from workbench.cli import main
from workbench.core.methods.images import LazyImages
from workbench.core.methods.package import load_model
from workbench.core.run_record import latest_record, load_record, load_records, summary
from workbench.core.workspace.store import LATER_TABLES


@pytest.fixture(scope="module")
def small_data(sample_root: Path, tmp_path_factory) -> Path:
    """A copy of the washer sample with 12 training images (fast trainings)."""
    root = tmp_path_factory.mktemp("records") / "washer"
    src = sample_root / "washer"
    shutil.copytree(src / "test", root / "test")
    if (src / "ground_truth").is_dir():
        shutil.copytree(src / "ground_truth", root / "ground_truth")
    (root / "train" / "good").mkdir(parents=True)
    for p in sorted((src / "train" / "good").iterdir())[:12]:
        shutil.copy(p, root / "train" / "good" / p.name)
    return root


@pytest.fixture(scope="module")
def trained(small_data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("m") / "model"
    assert main(["train", "--data", str(small_data), "--method", "patchcore", "--param", "image_size=64",
                 "--param", "seed=7", "--out", str(out), "--device", "cpu", "-q"]) == 0
    return out


def _test_scores(model_dir: Path, data: Path) -> np.ndarray:
    paths = sorted((data / "test").rglob("*.png"))
    return load_model(model_dir, device="cpu").predict(LazyImages(paths))[0]


def test_training_writes_a_complete_record(trained, small_data):
    record = latest_record(trained, "train")
    assert record is not None and record["method"] == "patchcore" and record["seed"] == 7
    assert record["params"]["image_size"] == 64 and record["device"] == "cpu"
    for name in ("torch", "timm", "faiss-cpu", "onnxruntime"):
        assert name in record["packages"] and record["packages"][name]
    ds = record["dataset"]
    assert ds["n_files"] == len(ds["files"]) == 11 and len(ds["holdout"]) == 1 and len(ds["sha256"]) == 64
    assert all(not f["path"].startswith("/") for f in ds["files"])  # relative to the dataset root
    assert record["timings"]["fit"] > 0
    assert "seed 7" in summary(record)


def test_rerun_from_record_reproduces_scores_bitwise(trained, small_data, tmp_path, capsys):
    record_file = sorted((trained / "run_records").glob("*-train.json"))[0]
    again = tmp_path / "again"
    assert main(["train", "--record", str(record_file), "--out", str(again), "-q"]) == 0
    out = capsys.readouterr().out
    assert "Re-running the patchcore training" in out and "differ" not in out
    first, second = _test_scores(trained, small_data), _test_scores(again, small_data)
    assert first.dtype == np.float32 and np.array_equal(first, second)
    assert latest_record(again, "train")["dataset"]["sha256"] == latest_record(trained, "train")["dataset"]["sha256"]


def test_rerun_warns_when_the_files_changed(trained, small_data, tmp_path, capsys):
    record = json.loads(sorted((trained / "run_records").glob("*-train.json"))[0].read_text())
    record["dataset"]["files"][0]["sha256"] = "0" * 64
    record["dataset"]["sha256"] = "1" * 64
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(record))
    assert main(["train", "--record", str(edited), "--out", str(tmp_path / "m"), "-q"]) == 0
    assert "training files differ from the record" in capsys.readouterr().out


def test_bad_record_is_refused_with_the_file_named(tmp_path, capsys):
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({"kind": "train", "created_at": "x"}))
    assert main(["train", "--record", str(bad), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "workbench_version" in err


def test_evaluate_calibrate_and_export_write_records(trained, small_data, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    assert main(["evaluate", "--model", str(model), "--data", str(small_data), "--device", "cpu", "-q"]) == 0
    assert main(["calibrate", "--model", str(model), "--data", str(small_data), "--device", "cpu", "-q"]) == 0
    assert main(["export", "--model", str(model), "--out", str(tmp_path / "onnx")]) == 0
    kinds = [r["kind"] for r in load_records(model)]
    assert kinds == ["train", "evaluate", "calibrate", "export"]
    evaluation = latest_record(model, "evaluate")
    assert evaluation["dataset"]["split"] == "test" and evaluation["metrics"]["image_auroc"] is not None
    assert latest_record(model, "calibrate")["metrics"]["image_threshold"] is not None
    assert [r["kind"] for r in load_records(tmp_path / "onnx")] == ["export"]
    load_record(sorted((model / "run_records").iterdir())[0])


def test_exported_package_with_new_metadata_scores_without_torch(trained, small_data, tmp_path):
    from test_torch_free import run_blocked

    assert main(["export", "--model", str(trained), "--out", str(tmp_path / "onnx")]) == 0
    meta = json.loads((tmp_path / "onnx" / "model.json").read_text())
    assert "memory_bank" in meta and "training_files" in meta  # the export carries the new metadata
    image = sorted((small_data / "test").rglob("*.png"))[0]
    proc = run_blocked(f"""
        import sys
        from workbench.core.export.runtime import OnnxInferencer
        from workbench.core.data import read_image
        from workbench.core.run_record import load_records
        from workbench.core.model_versions import recheck_message
        scorer = OnnxInferencer({str(tmp_path / 'onnx')!r})
        scores, maps = scorer.predict([read_image({str(image)!r})])
        assert [r['kind'] for r in load_records({str(tmp_path / 'onnx')!r})] == ['export']
        assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'timm')]
        print('score', float(scores[0]))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "score" in proc.stdout


def test_workspace_keeps_records_and_upgrades_old_workspaces(tmp_path, trained):
    from workbench.core.workspace import store
    from workbench.core.workspace.store import DB_FILE, Workspace

    with Workspace.create(tmp_path / "ws") as ws:
        ds = ws.add_dataset("d", tmp_path)
        model_id = ws.add_model(ds.id, "patchcore", trained, {}).id
        record = latest_record(trained, "train")
        ws.add_run_record(model_id, record)
        assert ws.run_records(model_id) == [record]
        assert ws._live().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # a schema-1 workspace (no run_records table) is backed up and upgraded on open
    conn = sqlite3.connect(tmp_path / "ws" / DB_FILE)
    for table in LATER_TABLES:  # everything schema 1 did not have
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.run_records(model_id) == []
        ws.add_run_record(model_id, record)
    assert (tmp_path / "ws" / f"{DB_FILE}.bak-v1").is_file() and store.SCHEMA_VERSION == 4


def test_update_command_then_evaluate_asks_for_a_recheck_until_calibrated(trained, small_data, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    good = sorted((small_data / "test" / "good").glob("*.png"))[:3]
    assert main(["update", "--model", str(model), "--add", str(good[0]), "--add", str(good[1]), "-q"]) == 0
    out = capsys.readouterr().out
    assert "Added 2 good image(s)" in out and "model version 2" in out and "re-check" in out
    assert [r["kind"] for r in load_records(model)][-1] == "update"
    assert main(["evaluate", "--model", str(model), "--data", str(small_data), "--device", "cpu", "-q"]) == 0
    assert "re-check the thresholds" in capsys.readouterr().out
    assert main(["calibrate", "--model", str(model), "--data", str(small_data), "--device", "cpu", "-q"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--data", str(small_data), "--device", "cpu", "-q"]) == 0
    assert "re-check the thresholds" not in capsys.readouterr().out
    # the previous version stays loadable next to the new one
    assert load_model(model / "versions" / "v1", device="cpu").fitted
