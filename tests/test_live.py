"""Live inspection core: sources, the dropping queue, the scoring loop and its log."""

from __future__ import annotations

import threading
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from workbench.core.live import (CameraSource, DropQueue, Frame, LiveInspection, LiveLog, LiveLogError, QueueClosed,
                                 ReplayFolder, SourceError, WatchedFolder, read_log)
from workbench.core.live.log import LIVE_FIELDS


class FakeScorer:
    """Score = mean brightness / 255 (NG from 0.5), map = a bright square; optional slowness."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.metadata = {"thresholds": {"image": {"value": 0.5}, "pixel": {"value": 0.5}}}
        self.calls = 0

    def predict(self, images):
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        scores = np.array([float(np.mean(im)) / 255.0 for im in images], np.float32)
        maps = np.zeros((len(images), 16, 16), np.float32)
        maps[:, 4:8, 4:8] = scores[:, None, None] * 2
        return scores, maps


class ListSource:
    """``n`` frames as fast as possible (a camera faster than the scorer)."""

    kind = "camera"
    blocking = False

    def __init__(self, n: int, paths: bool = False, value: int = 200, blocking: bool = False) -> None:
        self.n, self.paths, self.value, self.blocking = n, paths, value, blocking

    def describe(self) -> str:
        return f"{self.n} test frames"

    def frames(self, stop, notice):
        for i in range(self.n):
            if stop.is_set():
                return
            path = Path(f"/nowhere/f{i}.png") if self.paths else None
            yield Frame(self.kind, f"frame {i}", time.monotonic(), time.time(),
                        np.full((24, 24, 3), self.value, np.uint8), path)


def png_bytes(value: int = 100, size: int = 64) -> bytes:
    image = np.full((size, size, 3), value, np.uint8)
    image[::4] = 255 - value  # not compressible to nothing: the file is written in several chunks
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def collect(source, stop: threading.Event, out: list, notices: list) -> threading.Thread:
    def run():
        for frame in source.frames(stop, notices.append):
            out.append((time.monotonic(), frame))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_for(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


# ----------------------------------------------------------------------------- queue
def test_drop_queue_drops_oldest_and_counts() -> None:
    q: DropQueue[int] = DropQueue(2)
    assert q.put(1) is None and q.put(2) is None
    assert q.put(3) == 1 and q.put(4) == 2
    assert q.dropped == 2 and len(q) == 2
    assert q.get(0) == 3 and q.get(0) == 4 and q.get(0.01) is None
    q.close()
    with pytest.raises(QueueClosed):
        q.get(0.01)


def test_drop_queue_blocking_put_waits_for_room() -> None:
    q: DropQueue[int] = DropQueue(1)
    q.put(1)
    assert q.put(2, block=True, timeout=0.05) == 2  # timed out: handed back, nothing dropped
    threading.Timer(0.05, q.get).start()
    assert q.put(3, block=True, timeout=2) is None
    assert q.dropped == 0 and q.get(0) == 3


# ----------------------------------------------------------------------------- watched folder
def test_watcher_picks_up_chunk_written_file_once_and_only_when_complete(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "old.png").write_bytes(png_bytes(50))  # there before the start: not a new part
    source = WatchedFolder(folder, settle_s=1.5, poll_s=0.02, rescan_s=0.2)  # long: the machine may be busy
    stop, got, notices = threading.Event(), [], []
    thread = collect(source, stop, got, notices)
    try:
        time.sleep(0.3)
        data = png_bytes(120)
        chunks = [data[i:i + len(data) // 5 + 1] for i in range(0, len(data), len(data) // 5 + 1)]
        target = folder / "part.png"
        with open(target, "wb") as fh:
            for chunk in chunks:  # a slow writer: pauses much shorter than settle_s between chunks
                fh.write(chunk)
                fh.flush()
                time.sleep(0.1)
            finished = time.monotonic()
        # a second writer: temporary name, then renamed into place (taken at once)
        (folder / "moved.tmp").write_bytes(png_bytes(200))
        (folder / "moved.tmp").rename(folder / "moved.png")
        assert wait_for(lambda: len(got) >= 2, 10)
        time.sleep(2.0)  # more polls and rescans: nothing is picked up twice
    finally:
        stop.set()
        thread.join(5)
    names = [Path(f.name).name for _, f in got]
    assert sorted(names) == ["moved.png", "part.png"], names
    when, frame = next((t, f) for t, f in got if f.name.endswith("part.png"))
    assert when >= finished  # never before the last chunk
    assert frame.error == "" and frame.image is not None and frame.image.shape == (64, 64, 3)
    assert not notices


def test_watcher_reports_a_vanished_folder_and_an_unreadable_file_and_goes_on(tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    source = WatchedFolder(folder, settle_s=0.1, poll_s=0.02, rescan_s=0.2)
    stop, got, notices = threading.Event(), [], []
    thread = collect(source, stop, got, notices)
    try:
        time.sleep(0.2)
        (folder / "broken.png").write_bytes(b"this is not a PNG at all" * 10)
        assert wait_for(lambda: len(got) == 1)
        shutil.rmtree(folder)
        assert wait_for(lambda: any("gone" in n for n in notices))
        folder.mkdir()
        assert wait_for(lambda: any("back" in n for n in notices))
        (folder / "good.png").write_bytes(png_bytes(90))
        assert wait_for(lambda: len(got) == 2)
    finally:
        stop.set()
        thread.join(5)
    broken, good = got[0][1], got[1][1]
    assert broken.image is None and "broken.png" in broken.error
    assert good.image is not None and good.name.endswith("good.png")


def test_watcher_takes_existing_files_only_when_asked(tmp_path: Path) -> None:
    (tmp_path / "old.png").write_bytes(png_bytes(60))
    for existing, expected in ((False, []), (True, ["old.png"])):
        stop, got, notices = threading.Event(), [], []
        thread = collect(WatchedFolder(tmp_path, settle_s=0.05, poll_s=0.02, existing=existing), stop, got, notices)
        wait_for(lambda: len(got) >= len(expected))
        time.sleep(0.5)
        stop.set()
        thread.join(5)
        assert [Path(f.name).name for _, f in got] == expected


def test_watcher_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        WatchedFolder(tmp_path / "nope")


# ----------------------------------------------------------------------------- camera
class FakeCapture:
    def __init__(self, n: int | None = None, opened: bool = True) -> None:
        self.n, self.opened, self.i, self.released = n, opened, 0, False

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV API)
        return self.opened

    def read(self):
        if self.n is not None and self.i >= self.n:
            return False, None
        self.i += 1
        frame = np.zeros((8, 8, 3), np.uint8)
        frame[:, :, 0] = 255  # blue in OpenCV's BGR
        time.sleep(0.002)
        return True, frame

    def release(self) -> None:
        self.released = True


def test_camera_source_converts_caps_rate_and_ends_on_failures() -> None:
    cap = FakeCapture(n=None)
    source = CameraSource("0", fps=20, capture_factory=lambda device: cap)
    assert source.device == 0
    stop, got, notices = threading.Event(), [], []
    thread = collect(source, stop, got, notices)
    time.sleep(0.5)
    stop.set()
    thread.join(5)
    assert cap.released
    assert 2 <= len(got) <= 12, len(got)  # at most 20/s for 0.5 s, although the capture gives ~400/s
    first = got[0][1]
    assert first.image.shape == (8, 8, 3) and tuple(first.image[0, 0]) == (0, 0, 255)  # RGB
    assert [f.name for _, f in got[:2]] == ["frame 1", "frame 2"]

    ending = CameraSource("rtsp://cam/stream", capture_factory=lambda d: FakeCapture(n=3), max_failures=3,
                          retry_s=0.0)
    frames = list(ending.frames(threading.Event(), notices.append))
    assert len(frames) == 3 and "no image 3 times" in notices[-1]
    with pytest.raises(SourceError, match="Cannot open camera"):
        list(CameraSource(1, capture_factory=lambda d: FakeCapture(opened=False)).frames(threading.Event(), print))


# ----------------------------------------------------------------------------- the loop
def test_slow_scorer_drops_frames_and_counts_them(tmp_path: Path) -> None:
    with LiveLog(tmp_path / "live.csv") as log:
        session = LiveInspection(FakeScorer(delay_s=0.02), ListSource(60, paths=True), log=log, queue_size=2)
        summary = session.run()
    assert summary["dropped"] > 20  # the source gives 60 frames at once; the scorer takes 20 ms each
    assert summary["images"] + summary["dropped"] == 60
    rows = read_log(tmp_path / "live.csv")
    dropped = [r for r in rows if r["decision"] == "dropped"]
    assert len(dropped) == summary["dropped"]  # each dropped file is named in the log
    scored = [r for r in rows if r["decision"] != "dropped"]
    assert len(scored) == summary["images"] and {r["decision"] for r in scored} == {"NG"}
    assert int(scored[-1]["dropped"]) == summary["dropped"]


def test_blocking_source_drops_nothing_and_max_images_stops(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for i, value in enumerate([30, 220, 40, 230, 50]):
        (folder / ("sub" if i % 2 else "") / f"{i}.png").write_bytes(png_bytes(value))
    results = []
    session = LiveInspection(FakeScorer(delay_s=0.01), ReplayFolder(folder), on_result=results.append)
    summary = session.run()
    assert summary["dropped"] == 0 and summary["images"] == 5
    assert [Path(r.name).name for r in results] == ["0.png", "2.png", "4.png", "1.png", "3.png"]
    session = LiveInspection(FakeScorer(), ReplayFolder(folder, loop=True), max_images=7)
    assert session.run()["images"] == 7


def test_memory_stays_flat_over_a_long_run(tmp_path: Path) -> None:
    marks: dict[int, int] = {}

    def on_result(result) -> None:
        if result.index in (300, 3000):
            marks[result.index] = tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        with LiveLog(tmp_path / "live.csv") as log:
            LiveInspection(FakeScorer(), ListSource(3000, blocking=True), log=log, render=True,
                           on_result=on_result, queue_size=4).run()
    finally:
        tracemalloc.stop()
    assert len(read_log(tmp_path / "live.csv")) == 3000
    assert marks[3000] - marks[300] < 256 * 1024, marks  # rows go to disk, windows are bounded


def test_unreadable_frames_and_model_failures_are_logged_and_the_session_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"garbage")
    (folder / "b.png").write_bytes(png_bytes(220))

    class Flaky(FakeScorer):
        def predict(self, images):
            if self.calls == 0:
                self.calls += 1
                raise RuntimeError("boom")
            return super().predict(images)

    (folder / "c.png").write_bytes(png_bytes(20))
    with LiveLog(tmp_path / "live.csv") as log:
        summary = LiveInspection(Flaky(), ReplayFolder(folder), log=log, copy_dir=tmp_path / "ng").run()
    rows = read_log(tmp_path / "live.csv")
    assert [r["decision"] for r in rows] == ["unreadable", "error", "OK"]
    assert "a.png" in rows[0]["error"] and "boom" in rows[1]["error"]
    assert summary["counts"] == {"unreadable": 1, "error": 1, "OK": 1}
    assert not list((tmp_path / "ng").iterdir())  # nothing NG: nothing copied


def test_ng_copies_and_log_columns(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "bright.png").write_bytes(png_bytes(230))
    (folder / "dark.png").write_bytes(png_bytes(10))
    with LiveLog(tmp_path / "live.csv") as log:
        LiveInspection(FakeScorer(), ReplayFolder(folder), log=log, copy_dir=tmp_path / "ng").run()
        LiveInspection(FakeScorer(), ListSource(1, value=250), log=log, copy_dir=tmp_path / "ng").run()
    assert (tmp_path / "live.csv").read_text().splitlines()[0] == ",".join(LIVE_FIELDS)
    rows = read_log(tmp_path / "live.csv")
    assert [(Path(r["file"]).name, r["decision"]) for r in rows] == [
        ("bright.png", "NG"), ("dark.png", "OK"), ("frame 0", "NG")]
    assert int(rows[0]["regions"]) == 1 and int(rows[0]["defect_area_px"]) > 0 and float(rows[0]["latency_ms"]) > 0
    copies = sorted(p.name for p in (tmp_path / "ng").iterdir())
    assert len(copies) == 2 and any(c.endswith("_NG_bright.png") for c in copies)
    assert any(c.endswith("_NG_frame-0.png") for c in copies)


def test_log_appends_after_a_torn_row_refuses_foreign_csv_and_second_writer(tmp_path: Path) -> None:
    path = tmp_path / "live.csv"
    with LiveLog(path) as log:
        log.append({"file": "a.png", "decision": "OK", "score": 1})
        with pytest.raises(LiveLogError, match="Another inspection session"):
            LiveLog(path).open()
    with open(path, "ab") as fh:
        fh.write(b"2026-01-01,replay,b.png,0.9,N")  # a row torn by a power cut
    with LiveLog(path) as log:
        log.append({"file": "c.png", "decision": "NG", "score": 2})
    assert [r["file"] for r in read_log(path)] == ["a.png", "c.png"]
    other = tmp_path / "other.csv"
    other.write_text("path,score\nx.png,1\n")
    with pytest.raises(LiveLogError, match="not a live inspection log"):
        LiveLog(other).open()
    assert other.read_text() == "path,score\nx.png,1\n"
