"""predict --cluster and sweep: a local process pool and a real local Ray cluster.

The Ray tests start a head node and a second worker node process (one CPU each) on this computer
inside the test module and stop them at the end; nothing needs the network. (Ray binds the nodes
to the computer's own address: forcing 127.0.0.1 makes its GCS advertise one address and listen
on another in Ray 2.60, and the driver then waits for minutes.)
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from workbench.cli import main
from workbench.core.batch_predict import read_rows
from workbench.core.cluster import ClusterError, parse_cluster
from workbench.core.cluster.backends import LocalPoolBackend, RayBackend
from workbench.core.cluster.worker import spec_for
from workbench.core.workflows import expand_images, predict_images
from workbench.package_data import sample_models_dir

pytestmark = pytest.mark.cluster
ONNX_MODEL = sample_models_dir() / "fabric" / "onnx"


@pytest.fixture(scope="module")
def images_200(tmp_path_factory, sample_root: Path) -> Path:
    """200 distinct images: the fabric test images, flipped and rotated in turn."""
    sources = sorted((sample_root / "fabric" / "test").rglob("*.png"))
    folder = tmp_path_factory.mktemp("images200")
    for i in range(200):
        image = cv2.imread(str(sources[i % len(sources)]))
        turn = i // len(sources)
        image = np.ascontiguousarray(np.rot90(image, turn) if turn else image)
        cv2.imwrite(str(folder / f"img_{i:03d}.png"), image)
    return folder


@pytest.fixture(scope="module")
def single_rows(images_200: Path, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("single") / "out"
    predict_images(ONNX_MODEL, expand_images([images_200]), out)
    return _rows(out)


def _rows(out: Path) -> list[dict]:
    return read_rows(out / "scores.csv")


def _same_rows(rows: list[dict], expected: list[dict]) -> None:
    """Same images in the same order, scores within 1e-5 (relative), same decisions and areas."""
    assert [r["path"] for r in rows] == [r["path"] for r in expected]
    assert [r["decision"] for r in rows] == [r["decision"] for r in expected]
    assert [r["defect_area_px"] for r in rows] == [r["defect_area_px"] for r in expected]
    got = np.array([float(r["score"]) for r in rows])
    want = np.array([float(r["score"]) for r in expected])
    np.testing.assert_allclose(got, want, rtol=1e-5)


def _kill_when(pids, out: Path, min_rows: int = 2) -> list[int]:
    """SIGKILL one worker process once the run has written ``min_rows`` rows (a background helper)."""
    killed: list[int] = []

    def run() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            csv = out / "scores.csv"
            if csv.is_file() and csv.read_bytes().count(b"\n") > min_rows:
                for pid in pids():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return killed


# ----------------------------------------------------------------------------- choosing the engine
def test_parse_cluster_without_ray_uses_a_process_pool_and_says_why(monkeypatch) -> None:
    monkeypatch.setattr("workbench.core.cluster.backends.ray_installed", lambda: False)
    spec = parse_cluster("auto", environ={})
    assert spec.kind == "local" and "Ray is not installed" in spec.note
    assert parse_cluster("local", environ={}).kind == "local"
    with pytest.raises(ClusterError, match="not installed"):
        parse_cluster("ray://head:10001", environ={})
    with pytest.raises(ClusterError, match="RAY_ADDRESS"):
        parse_cluster("auto", environ={"RAY_ADDRESS": "head:6379"})


def test_cli_names_the_missing_ray_and_exits_2(monkeypatch, tmp_path, capsys, images_200) -> None:
    monkeypatch.setattr("workbench.core.cluster.backends.ray_installed", lambda: False)
    code = main(["predict", "--model", str(ONNX_MODEL), str(images_200), "--out", str(tmp_path / "o"),
                 "--cluster", "ray://head:10001", "-q"])
    assert code == 2
    assert "pip install -e '.[cluster]'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "scores.csv").exists()


def test_parse_cluster_reads_ray_address(monkeypatch) -> None:
    pytest.importorskip("ray")
    spec = parse_cluster("auto", environ={"RAY_ADDRESS": "10.0.0.5:6379"})
    assert (spec.kind, spec.address) == ("ray", "10.0.0.5:6379")
    assert parse_cluster("ray://10.0.0.5:10001", environ={}).address == "ray://10.0.0.5:10001"


# ----------------------------------------------------------------------------- local process pool
def test_local_pool_gives_the_single_process_rows_even_when_a_worker_is_killed(images_200, single_rows,
                                                                                 tmp_path) -> None:
    out = tmp_path / "pool"
    backend = LocalPoolBackend(spec_for(ONNX_MODEL, None, 1), workers=2)
    children = lambda: [p.pid for p in multiprocessing.active_children()]  # noqa: E731
    killed = _kill_when(children, out, min_rows=20)
    predict_images(ONNX_MODEL, expand_images([images_200]), out, batch_size=4, backend=backend)
    assert killed, "the run ended before a worker could be killed; the test proves nothing"
    assert backend.stats.resent >= 1
    _same_rows(_rows(out), single_rows)


# ----------------------------------------------------------------------------- a real Ray cluster
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        yield cluster.address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def _ray_task_pids() -> list[int]:
    """Ray worker processes running a scoring task (Ray names them after the task)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::score_batch"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_ray_predict_writes_exactly_the_single_process_rows(ray_cluster, images_200, single_rows, tmp_path,
                                                            capsys) -> None:
    out = tmp_path / "ray"
    code = main(["predict", "--model", str(ONNX_MODEL), str(images_200), "--out", str(out), "--cluster",
                 ray_cluster, "-q"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "2 worker process(es), model loaded 2 time(s)" in printed  # once per worker, not per batch
    _same_rows(_rows(out), single_rows)


def test_ray_predict_survives_a_killed_worker(
        ray_cluster, images_200, single_rows, tmp_path) -> None:
    out = tmp_path / "ray_kill"
    backend = RayBackend(spec_for(ONNX_MODEL, None, 1), ray_cluster)
    killed = _kill_when(_ray_task_pids, out, min_rows=10)
    try:
        predict_images(ONNX_MODEL, expand_images([images_200]), out, batch_size=4, backend=backend)
    finally:
        backend.close()
    assert killed, "the run ended before a worker could be killed; the test proves nothing"
    _same_rows(_rows(out), single_rows)


def test_ray_predict_resumes_after_the_driver_is_killed(ray_cluster, images_200, single_rows, tmp_path) -> None:
    """SIGKILL the `workbench predict --cluster` process part-way; the same command finishes the rest."""
    import subprocess
    import sys

    out = tmp_path / "driver_kill"
    command = ["predict", "--model", str(ONNX_MODEL), str(images_200), "--out", str(out), "--cluster",
               ray_cluster, "--batch-size", "4", "-q"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    driver = subprocess.Popen([sys.executable, "-m", "workbench.cli", *command], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and driver.poll() is None:
            csv = out / "scores.csv"
            if csv.is_file() and csv.read_bytes().count(b"\n") > 40:
                break
            time.sleep(0.05)
        assert driver.poll() is None, "the driver ended before it could be killed"
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.wait(timeout=60)
    kept = len(_rows(out))
    assert 40 <= kept < 200
    assert main(command) == 0
    _same_rows(_rows(out), single_rows)


@pytest.fixture(scope="module")
def two_small_categories(tmp_path_factory, sample_root: Path) -> Path:
    """Both sample categories cut down to 8 good training images and 6 test images each."""
    root = tmp_path_factory.mktemp("small")
    for category in ("fabric", "washer"):
        src = sample_root / category
        goods = sorted((src / "train" / "good").glob("*.png"))[:8]
        (root / category / "train" / "good").mkdir(parents=True)
        for p in goods:
            shutil.copy(p, root / category / "train" / "good" / p.name)
        for kind in sorted(d.name for d in (src / "test").iterdir()):
            (root / category / "test" / kind).mkdir(parents=True)
            for p in sorted((src / "test" / kind).glob("*.png"))[:3]:
                shutil.copy(p, root / category / "test" / kind / p.name)
                mask = src / "ground_truth" / kind / f"{p.stem}_mask.png"
                if mask.is_file():
                    (root / category / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
                    shutil.copy(mask, root / category / "ground_truth" / kind / mask.name)
    return root


def test_ray_sweep_writes_a_leaderboard_and_a_rerun_skips_every_combination(ray_cluster, two_small_categories,
                                                                             tmp_path, capsys) -> None:
    out = tmp_path / "sweep"
    args = ["sweep", "--data", str(two_small_categories), "--methods", "padim,dfm", "--param", "image_size=64",
            "--out", str(out), "--cluster", ray_cluster, "-q"]
    assert main(args) == 0
    import json

    board = json.loads((out / "leaderboard.json").read_text())["rows"]
    assert sorted((r["category"], r["method"]) for r in board) == [
        ("fabric", "dfm"), ("fabric", "padim"), ("washer", "dfm"), ("washer", "padim")]
    assert all(r["status"] == "ok" and 0.0 <= r["image_auroc"] <= 1.0 for r in board)
    for r in board:
        assert (out / r["model_dir"] / "model.json").is_file()
    assert (out / "leaderboard.csv").read_text().count("\n") == 5
    capsys.readouterr()
    assert main(args) == 0
    assert "Ran 0, skipped 4 finished earlier, 0 failed" in capsys.readouterr().out


def test_sweep_records_a_failing_combination_and_goes_on(two_small_categories, tmp_path, capsys) -> None:
    out = tmp_path / "sweep_fail"
    # an image size that the backbone cannot take fails for that combination only
    code = main(["sweep", "--data", str(two_small_categories), "--categories", "washer", "--methods", "dfm",
                 "--param", "image_size=64,8", "--out", str(out), "--cluster", "local", "--workers", "1", "-q"])
    printed = capsys.readouterr().out
    assert code == 3
    assert "Ran 2, skipped 0 finished earlier, 1 failed" in printed
    import json

    rows = json.loads((out / "leaderboard.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", "failed"] and rows[1]["error"]


def test_sweep_refuses_unknown_parameters_and_categories(two_small_categories, tmp_path, capsys) -> None:
    assert main(["sweep", "--data", str(two_small_categories), "--methods", "padim", "--param", "bogus=1,2",
                 "--out", str(tmp_path / "s"), "-q"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["sweep", "--data", str(two_small_categories), "--categories", "screws", "--methods", "padim",
                 "--out", str(tmp_path / "s"), "-q"]) == 2
    assert "screws" in capsys.readouterr().err


def test_sweep_combination_never_deletes_a_foreign_model_folder(tmp_path) -> None:
    """A combination's model folder is replaced only when it holds nothing but a model package."""
    from workbench.core.cluster.sweep import SweepCombo, run_combo

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "notes.txt").write_text("mine")
    result = run_combo(str(tmp_path / "no-data"), "auto", SweepCombo(None, "dfm"), str(tmp_path), None, 1)
    assert result["status"] == "failed" and "notes.txt" in result["error"]
    assert (tmp_path / "model" / "notes.txt").read_text() == "mine"
