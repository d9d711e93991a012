"""``workbench inspect``: replay equals batch predict, a killed session leaves a clean log,
a watched folder that vanishes or an unreadable file is reported and the session goes on,
Ctrl+C ends with the summary."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from workbench.core.live import read_log
from workbench.core.live.log import LIVE_FIELDS, summary_path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_MODEL = REPO / "workbench" / "sample_models" / "washer" / "onnx"
SAMPLE_TEST = REPO / "workbench" / "sample_data" / "washer" / "test"


def inspect_process(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "workbench.cli", "inspect", "--model", str(SAMPLE_MODEL), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


class Reader:
    """Collects a pipe's lines in a thread (so the child never blocks on a full pipe)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True)
        self.thread.start()

    def wait_for(self, text: str, timeout: float = 120) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(text in line for line in self.lines):
                return True
            time.sleep(0.05)
        return False

    @property
    def text(self) -> str:
        return "".join(self.lines)


def test_replay_logs_one_row_per_image_with_the_decisions_of_batch_predict(tmp_path: Path, capsys) -> None:
    from workbench.cli import main

    log = tmp_path / "live.csv"
    assert main(["inspect", "--model", str(SAMPLE_MODEL), "--replay", str(SAMPLE_TEST), "--log", str(log), "-q",
                 "--copy-ng", str(tmp_path / "ng")]) == 0
    out = capsys.readouterr().out
    assert "Session ended (source ended)" in out and "dropped 0 frame(s)" in out
    assert main(["predict", "--model", str(SAMPLE_MODEL), str(SAMPLE_TEST), "--out", str(tmp_path / "pred"),
                 "--no-overlays", "-q"]) == 0
    with open(tmp_path / "pred" / "scores.csv", newline="", encoding="utf-8") as fh:
        batch = {Path(r["path"]).relative_to(SAMPLE_TEST).as_posix(): r for r in csv.DictReader(fh)}
    rows = read_log(log)
    live = {Path(r["file"]).relative_to(SAMPLE_TEST).as_posix(): r for r in rows}
    assert len(rows) == len(live) == len(batch) == 39  # one row per image, none twice
    assert {k: r["decision"] for k, r in live.items()} == {k: r["decision"] for k, r in batch.items()}
    for key, row in live.items():
        assert float(row["score"]) == pytest.approx(float(batch[key]["score"]), rel=1e-4, abs=1e-4)
        assert (row["regions"], row["defect_area_px"]) == (batch[key]["regions"], batch[key]["defect_area_px"])
    n_bad = sum(r["decision"] in ("NG", "REVIEW") for r in rows)
    assert n_bad > 0 and len(list((tmp_path / "ng").iterdir())) == n_bad
    summary = __import__("json").loads(summary_path(log).read_text())
    assert summary["images"] == 39 and summary["dropped"] == 0 and summary["ended_by"] == "source ended"


def test_killed_inspect_leaves_a_log_whose_rows_all_parse(tmp_path: Path) -> None:
    log = tmp_path / "live.csv"
    proc = inspect_process("--replay", str(SAMPLE_TEST), "--fps", "40", "--loop", "--log", str(log), "-q")
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end and (not log.is_file() or log.read_bytes().count(b"\n") < 25):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    lines = log.read_bytes().decode("utf-8").splitlines()
    assert len(lines) >= 25 and lines[0] == ",".join(LIVE_FIELDS)  # the kill came after 25 lines
    parsed = list(csv.reader(lines[1:]))
    assert all(len(fields) == len(LIVE_FIELDS) for fields in parsed)
    assert len(read_log(log)) == len(lines) - 1  # every row matches its checksum: nothing torn


def _png(path: Path, source: Path) -> None:
    path.write_bytes(source.read_bytes())


def test_inspect_watch_reports_vanished_folder_and_unreadable_file_goes_on_and_ctrl_c_ends(tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    log = tmp_path / "live.csv"
    proc = inspect_process("--watch", str(folder), "--settle", "0.2", "--log", str(log))
    out, err = Reader(proc.stdout), Reader(proc.stderr)
    try:
        assert err.wait_for("Ctrl+C ends the session"), err.text
        (folder / "broken.png").write_bytes(b"not an image" * 50)
        assert out.wait_for("broken.png", 60), out.text + err.text
        _png(folder / "good1.png", SAMPLE_TEST / "good" / "000.png")
        assert out.wait_for("good1.png", 60), out.text + err.text
        shutil.rmtree(folder)
        assert err.wait_for("is gone", 60), err.text
        folder.mkdir()
        assert err.wait_for("is back", 60), err.text
        _png(folder / "dent.png", SAMPLE_TEST / "dent" / "000.png")
        assert out.wait_for("dent.png", 60), out.text + err.text
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(60)
    finally:
        proc.kill()
        proc.wait(30)
    out.thread.join(10)
    assert rc == 0, err.text
    assert "Session ended (interrupted (Ctrl+C))" in out.text
    rows = read_log(log)
    assert [(Path(r["file"]).name, r["decision"]) for r in rows] == [
        ("broken.png", "unreadable"), ("good1.png", "OK"), ("dent.png", "NG")]
    assert "broken.png" in rows[0]["error"]
    summary = __import__("json").loads(summary_path(log).read_text())
    assert any("is gone" in n for n in summary["notices"]) and summary["images"] == 3


def test_inspect_bad_input(tmp_path: Path, capsys) -> None:
    from workbench.cli import main

    assert main(["inspect", "--model", str(SAMPLE_MODEL), "--watch", str(tmp_path / "nope"),
                 "--log", str(tmp_path / "l.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["inspect", "--model", str(tmp_path / "nomodel"), "--replay", str(SAMPLE_TEST),
                 "--log", str(tmp_path / "l.csv")]) == 2
    assert "Model folder not found" in capsys.readouterr().err
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["inspect", "--model", str(SAMPLE_MODEL), "--replay", str(SAMPLE_TEST), "--log", str(bad)]) == 2
    assert "not a live inspection log" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["inspect", "--model", str(SAMPLE_MODEL), "--replay", str(SAMPLE_TEST), "--watch", str(tmp_path),
              "--log", str(bad)])
