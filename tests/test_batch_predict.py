"""Streaming, resumable folder prediction (workbench.core.batch_predict)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from workbench.core.batch_predict import ResumeMismatchError, predict_folder
from workbench.core.jobs import CancelToken, Cancelled


class MeanScorer:
    """A stand-in model: score = mean brightness, map = brightness; counts what it saw."""

    def __init__(self, cancel_after: int | None = None, cancel: CancelToken | None = None) -> None:
        self.metadata = {"score_stats": {"pixel": {"p50": 50.0, "max": 150.0}}}
        self.params = {"batch_size": 3}
        self.seen: list[float] = []
        self.calls = 0
        self._cancel_after, self._cancel = cancel_after, cancel

    def predict(self, images):
        self.calls += 1
        if self._cancel_after is not None and self.calls == self._cancel_after:
            self._cancel.cancel()  # as if the user pressed Cancel while this batch ran
        maps = np.stack([cv2.resize(im.mean(axis=2).astype(np.float32), (16, 16)) for im in images])
        scores = maps.reshape(len(images), -1).mean(axis=1)
        self.seen.extend(scores.tolist())
        return scores, maps


@pytest.fixture()
def folder(tmp_path) -> list[tuple[Path, str]]:
    root = tmp_path / "images"
    root.mkdir()
    items = []
    for i in range(10):
        path = root / f"{i:03d}.png"
        value = 20 * i
        cv2.imwrite(str(path), np.full((24, 32, 3), value, np.uint8))
        items.append((path, path.stem))
    (root / "broken.png").write_bytes(b"not a png")
    items.append((root / "broken.png", "broken"))
    return items


def rows_of(out: Path) -> list[dict[str, str]]:
    with open(out / "scores.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_scores_every_image_once_with_decisions_areas_and_overlays(folder, tmp_path):
    out = tmp_path / "out"
    summary = predict_folder(MeanScorer(), folder, out, fingerprint="m1", threshold=100.0)
    rows = rows_of(out)
    assert [r["path"] for r in rows] == [str(p) for p, _ in folder]
    assert summary.scored == 10 and summary.unreadable == 1 and summary.resumed == 0
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["broken.png"]["decision"] == "unreadable"
    assert len(summary.problems) == 1 and "broken.png" in summary.problems[0]
    assert by_name["000.png"]["decision"] == "OK" and by_name["009.png"]["decision"] == "NG"
    assert summary.n_ng == sum(20 * i >= 100 for i in range(10)) == 5
    # an NG image brighter than the pixel threshold is one big defect region
    assert int(by_name["009.png"]["defect_area_px"]) == 24 * 32 and by_name["000.png"]["defect_area_px"] == "0"
    assert len(list(out.glob("*_overlay.png"))) == 10


def test_cancel_keeps_finished_batches_and_resume_scores_only_the_rest(folder, tmp_path):
    out = tmp_path / "out"
    token = CancelToken()
    first = MeanScorer(cancel_after=2, cancel=token)
    with pytest.raises(Cancelled):
        predict_folder(first, folder, out, fingerprint="m1", threshold=100.0, cancel=token)
    partial = rows_of(out)
    assert len(partial) == 6  # two batches of three were written before the cancel took effect
    second = MeanScorer()
    summary = predict_folder(second, folder, out, fingerprint="m1", threshold=100.0)
    assert summary.resumed == 6 and summary.scored == 4 and summary.unreadable == 1
    assert len(second.seen) == 4
    rows = rows_of(out)
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p, _ in folder)
    fresh = tmp_path / "fresh"
    predict_folder(MeanScorer(), folder, fresh, fingerprint="m1", threshold=100.0)
    assert sorted(map(tuple, (r.values() for r in rows))) == sorted(map(tuple, (r.values() for r in rows_of(fresh))))


def test_a_torn_last_line_from_a_kill_is_dropped_and_redone(folder, tmp_path):
    out = tmp_path / "out"
    predict_folder(MeanScorer(), folder[:4], out, fingerprint="m1", threshold=100.0, overlays=False)
    with open(out / "scores.csv", "ab") as fh:
        fh.write(str(folder[4][0]).encode() + b",12")  # killed in the middle of writing a row
    scorer = MeanScorer()
    summary = predict_folder(scorer, folder, out, fingerprint="m1", threshold=100.0, overlays=False)
    assert summary.resumed == 4 and summary.scored == 6
    rows = rows_of(out)
    assert len(rows) == len(folder) and len({r["path"] for r in rows}) == len(folder)
    assert all(r["decision"] in {"OK", "NG", "unreadable"} for r in rows)


def test_resume_refuses_a_csv_of_another_model_or_threshold(folder, tmp_path):
    out = tmp_path / "out"
    predict_folder(MeanScorer(), folder[:3], out, fingerprint="m1", threshold=100.0, overlays=False)
    with pytest.raises(ResumeMismatchError, match="another model"):
        predict_folder(MeanScorer(), folder, out, fingerprint="m2", threshold=100.0, overlays=False)
    with pytest.raises(ResumeMismatchError, match="another threshold"):
        predict_folder(MeanScorer(), folder, out, fingerprint="m1", threshold=50.0, overlays=False)
    assert len(rows_of(out)) == 3  # the refused runs touched nothing
    summary = predict_folder(MeanScorer(), folder, out, fingerprint="m2", threshold=50.0, overlays=False,
                             resume=False)
    assert summary.resumed == 0 and len(rows_of(out)) == len(folder)


def test_progress_counts_resumed_images(folder, tmp_path):
    out = tmp_path / "out"
    predict_folder(MeanScorer(), folder[:5], out, fingerprint="m1", overlays=False)
    events = []
    predict_folder(MeanScorer(), folder, out, fingerprint="m1", overlays=False, progress=events.append)
    assert events[0].current == 5 and events[-1].current == events[-1].total == len(folder)
    assert [e.current for e in events] == sorted(e.current for e in events)
