"""A line-side ``predict`` that one odd file cannot stop, and a results CSV that survives
(issue "Reliability round 2").

Per-file isolation: a file name that is not UTF-8, a very long file name, an image format
OpenCV would decode past the pixel limit, an oversized file: each is one row, the run goes on.
The CSV: a lock refuses a second run on the same folder; a damaged line is dropped and only
its image scored again (never a duplicate row); a damaged ``predict_run.json`` is a clear error.
Also: ``workbench ... | head`` is not a disk error, and a symbolic link to its own folder
does not count images twice.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from workbench.cli import main
from workbench.core.batch_predict import overlay_name, predict_folder
from workbench.core.data import ImageReadError, load_dataset, read_image
from workbench.core.data import io as image_io
from workbench.core.formats import PredictRunError
from workbench.core.results_csv import CSV_FIELDS, display_path, row_check

REPO = Path(__file__).resolve().parents[1]


class MeanScorer:
    metadata = {"score_stats": {"pixel": {"p50": 50.0, "max": 150.0}}}
    params = {"batch_size": 3}

    def __init__(self) -> None:
        self.seen = 0

    def predict(self, images):
        self.seen += len(images)
        maps = np.stack([cv2.resize(im.mean(axis=2).astype(np.float32), (8, 8)) for im in images])
        return maps.reshape(len(images), -1).mean(axis=1), maps


def rows_of(out: Path) -> list[dict[str, str]]:
    with open(out / "scores.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_png(path: Path | bytes, value: int = 100, size: tuple[int, int] = (16, 16)) -> None:
    ok, png = cv2.imencode(".png", np.full((*size, 3), value, np.uint8))
    with open(path, "wb") as fh:  # bytes paths too (names that are not UTF-8)
        fh.write(png.tobytes())


@pytest.fixture
def images(tmp_path) -> list[tuple[Path, str]]:
    folder = tmp_path / "images"
    folder.mkdir()
    items = []
    for i in range(8):
        write_png(folder / f"{i:02d}.png", 25 * i)
        items.append((folder / f"{i:02d}.png", f"{i:02d}"))
    return items


# ----------------------------------------------------------------------------- odd files


def hdr_header(width: int, height: int) -> bytes:
    return f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n".encode() + b"\x02\x02" * 64


def test_formats_without_a_checked_header_are_refused_before_decoding(tmp_path, monkeypatch):
    decoded = []
    real = cv2.imdecode
    monkeypatch.setattr(image_io.cv2, "imdecode", lambda *a: decoded.append(a) or real(*a))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(hdr_header(20_000, 20_000))  # Radiance HDR named .png: 400 megapixels of float
    pnm = tmp_path / "p.png"
    pnm.write_bytes(b"P6\n30000 30000\n255\n" + b"\0" * 100)
    for path in (bomb, pnm):
        with pytest.raises(ImageReadError, match="not a supported image format"):
            read_image(path)
    broken_header = tmp_path / "h.png"
    broken_header.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40 + b"IEND\xaeB`\x82")
    with pytest.raises(ImageReadError, match="header cannot be read"):
        read_image(broken_header)
    assert decoded == []  # no decoder ever saw these bytes


def test_files_above_the_byte_limit_are_refused_without_reading_them(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    write_png(big, size=(64, 64))
    monkeypatch.setattr(image_io, "MAX_FILE_BYTES", 100)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("the whole file was read"))
    with pytest.raises(ImageReadError, match="above the limit"):
        read_image(big)


def test_odd_file_names_and_bad_files_become_rows_and_the_run_goes_on(images, tmp_path):
    folder = images[0][0].parent
    raw = os.fsencode(folder) + b"/caf\xe9-latin1.png"  # a Latin-1 name on a UTF-8 system
    write_png(raw, 200)
    long_name = folder / ("x" * 240 + ".png")  # legal, but its overlay name would be too long
    write_png(long_name, 220)
    bomb = folder / "bomb.png"
    bomb.write_bytes(hdr_header(20_000, 20_000))
    odd = [(Path(os.fsdecode(raw)), os.fsdecode(b"caf\xe9-latin1")), (long_name, long_name.stem), (bomb, "bomb")]
    summary = predict_folder(MeanScorer(), images + odd, tmp_path / "out", fingerprint="m", threshold=100.0)
    rows = {r["path"]: r for r in rows_of(tmp_path / "out")}
    assert len(rows) == len(images) + 3
    latin = rows[os.fsdecode(folder) + "/caf\\xe9-latin1.png"]  # escaped, one printable line
    assert latin["decision"] == "NG" and latin["score"]
    assert rows[str(long_name)]["decision"] == "NG"
    assert rows[str(bomb)]["decision"] == "unreadable" and "not a supported image format" in rows[str(bomb)]["error"]
    assert summary.unreadable == 1 and summary.scored == len(images) + 2
    overlays = {p.name for p in (tmp_path / "out").glob("*_overlay.png")}
    assert overlay_name(long_name.stem) in overlays and len(overlay_name(long_name.stem).encode()) <= 200
    assert len(overlays) == len(images) + 2
    again = MeanScorer()  # a rerun resumes: nothing is scored twice, odd names included
    assert predict_folder(again, images + odd, tmp_path / "out", fingerprint="m", threshold=100.0).resumed == 11
    assert again.seen == 0


def test_cli_predict_on_a_folder_with_a_non_utf8_name(tmp_path, capsys):
    from workbench.core.methods import create_method
    from workbench.core.methods.package import save_model

    rng = np.random.default_rng(0)
    model = create_method("padim", device="cpu", image_size=64, batch_size=8).fit(
        [rng.integers(60, 200, (48, 48, 3), dtype=np.uint8) for _ in range(4)])
    package = save_model(model, tmp_path / "m")
    folder = tmp_path / "imgs"
    folder.mkdir()
    write_png(folder / "ok.png")
    write_png(os.fsencode(folder) + b"/bad\xff.png")
    (folder / "text.png").write_text("not an image")
    assert main(["predict", "--model", str(package), str(folder), "--out", str(tmp_path / "o"), "-q"]) == 0
    captured = capsys.readouterr()
    assert "Scored 2 image(s), 1 unreadable" in captured.out and "skipped: Cannot read image" in captured.err
    assert {Path(r["path"]).name for r in rows_of(tmp_path / "o")} == {"ok.png", "bad\\xff.png", "text.png"}


def test_display_path_escapes_bytes_and_control_characters():
    assert display_path(Path(os.fsdecode(b"/d/a\xff\xfeb.png"))) == "/d/a\\xff\\xfeb.png"
    assert display_path("/d/line\nbreak\t.png") == "/d/line\\nbreak\\t.png"
    assert display_path("/d/Prüfteil_检查.png") == "/d/Prüfteil_检查.png"


# ----------------------------------------------------------------------------- the CSV


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_holds_the_lock(images, tmp_path):
    out = tmp_path / "out"
    predict_folder(MeanScorer(), images[:2], out, fingerprint="m", threshold=100.0, overlays=False)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from filelock import FileLock
        with FileLock({str(out / '.scores.csv.lock')!r}):
            print("locked", flush=True)
            sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(PredictRunError, match="Another 'predict' is writing to"):
            predict_folder(MeanScorer(), images, out, fingerprint="m", threshold=100.0, overlays=False)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert len(rows_of(out)) == 2  # the refused run wrote nothing
    predict_folder(MeanScorer(), images, out, fingerprint="m", threshold=100.0, overlays=False)
    assert len(rows_of(out)) == len(images)  # the lock is free again once its holder is gone


def test_a_damaged_line_is_dropped_and_only_its_image_scored_again(images, tmp_path):
    out = tmp_path / "out"
    predict_folder(MeanScorer(), images, out, fingerprint="m", threshold=100.0, overlays=False)
    lines = (out / "scores.csv").read_bytes().split(b"\n")
    lines[3] = lines[3][:5] + b'"' + lines[3][5:]  # one stray quote: csv would swallow the rest of the file
    assert b",OK," in lines[2]
    lines[2] = lines[2].replace(b",OK,", b",NG,")  # an edited decision: its checksum no longer matches
    (out / "scores.csv").write_bytes(b"\n".join(lines))
    scorer = MeanScorer()
    summary = predict_folder(scorer, images, out, fingerprint="m", threshold=100.0, overlays=False)
    assert scorer.seen == 2 and summary.repaired == 2 and summary.resumed == len(images) - 2
    rows = rows_of(out)
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p, _ in images)  # each exactly once
    assert all(r["row_check"] == row_check(r) for r in rows)
    assert list(rows[0]) == CSV_FIELDS


def test_a_damaged_predict_run_json_is_a_clear_error(images, tmp_path, capsys):
    out = tmp_path / "out"
    predict_folder(MeanScorer(), images[:2], out, fingerprint="m", threshold=100.0, overlays=False)
    for content, message in [("[]", "'(top level)': Input should be a valid dictionary"),
                             ('{"model_fingerprint": "m", "threshold": "high"}', "'threshold'"),
                             ('{"model_fingerprint": null}', "'model_fingerprint'"),
                             ("{oops", "is damaged")]:
        (out / "predict_run.json").write_text(content)
        with pytest.raises(PredictRunError, match=message.replace("(", r"\(").replace(")", r"\)")):
            predict_folder(MeanScorer(), images, out, fingerprint="m", threshold=100.0, overlays=False)


# ----------------------------------------------------------------------------- pipes and links


def test_a_closed_stdout_is_not_a_disk_error():
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "methods", "-v"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    proc.stdout.close()  # like `| head` exiting before the command prints
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Broken pipe" not in err and "Free disk space" not in err and "Traceback" not in err


def test_a_symlink_to_its_own_folder_does_not_count_images_twice(tmp_path, capsys):
    root = tmp_path / "parts"
    (root / "good").mkdir(parents=True)
    (root / "scratch").mkdir()
    for i in range(5):
        write_png(root / "good" / f"{i}.png", 20 * i)
    write_png(root / "scratch" / "s.png", 250)
    os.symlink(".", root / "again")  # a link to its own folder
    os.symlink(".", root / "good" / "again")
    ds = load_dataset(root, layout="folder")
    assert len(ds.records) == 6 and {r.label for r in ds.records} == {"good", "scratch"}

    from workbench.cli import _expand_images

    found = _expand_images([str(root / "good"), str(root / "good" / "again"), str(root / "good" / "0.png")])
    assert sorted(p.name for p, _ in found) == [f"{i}.png" for i in range(5)]


def test_a_csv_of_an_older_version_is_refused_not_rescored(images, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predict_run.json").write_text('{"model_fingerprint": "m", "threshold": 100.0, "overlays": false}')
    (out / "scores.csv").write_text("path,score,decision,defect_area_px\n" +
                                    "".join(f"{p},1,OK,0\n" for p, _ in images[:3]))
    with pytest.raises(PredictRunError, match="columns of another version or tool"):
        predict_folder(MeanScorer(), images, out, fingerprint="m", threshold=100.0, overlays=False)
    summary = predict_folder(MeanScorer(), images, out, fingerprint="m", threshold=100.0, overlays=False,
                             resume=False)
    assert summary.scored == len(images) and len(rows_of(out)) == len(images)


def test_an_overlay_that_cannot_be_written_is_an_error_row(images, tmp_path, monkeypatch):
    from workbench.core import batch_predict

    real = batch_predict.overlay_name
    monkeypatch.setattr(batch_predict, "overlay_name", lambda stem: "y" * 300 if stem == "03" else real(stem))
    summary = predict_folder(MeanScorer(), images, tmp_path / "out", fingerprint="m", threshold=100.0)
    rows = {Path(r["path"]).name: r for r in rows_of(tmp_path / "out")}
    assert rows["03.png"]["decision"] == "error" and "overlay cannot be written" in rows["03.png"]["error"]
    assert summary.failed == 1 and summary.scored == len(images) - 1


def test_a_run_record_left_without_rows_is_replaced_by_the_new_run(images, tmp_path):
    out = tmp_path / "out"
    predict_folder(MeanScorer(), images[:2], out, fingerprint="old", threshold=100.0, overlays=False)
    (out / "scores.csv").write_bytes(b"")  # emptied (or never written) by the earlier run
    predict_folder(MeanScorer(), images[:2], out, fingerprint="new", threshold=100.0, overlays=False)
    summary = predict_folder(MeanScorer(), images, out, fingerprint="new", threshold=100.0, overlays=False)
    assert summary.resumed == 2 and summary.scored == len(images) - 2
