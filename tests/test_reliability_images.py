"""Reliability: every kind of bad or unusual image file is converted or skipped with a reason.

Covers issue "Reliability and security", images: truncated/corrupt, zero-byte, wrong
extension, 16-bit PNG/TIFF, grayscale, RGBA, palette, huge (header only), mixed sizes,
non-ASCII paths, symlinks (followed; dangling ones listed), unreadable files and folders.
Related cases already covered elsewhere are listed in docs/reliability.md.
"""

from __future__ import annotations

import csv
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from workbench.cli import EXIT_BAD_INPUT, main
from workbench.core.data import ImageReadError, load_dataset, probe_image, read_image
from workbench.core.data import io as data_io

SIZE = 32


def write(path: Path, img: np.ndarray | None = None, value: int = 128, ext: str | None = None) -> Path:
    """Encode with cv2 as ``ext`` (default: the path's suffix) and write the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if img is None:
        img = np.full((SIZE, SIZE, 3), value, np.uint8)
    ok, buf = cv2.imencode(ext or path.suffix, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid-looking PNG whose header claims width x height pixels; only a few bytes of data.

    Decoding it would allocate about 1.2 GB, so it must be refused from the header alone.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))
    return path


def palette_png(path: Path) -> Path:
    raw = b"".join(b"\x00" + bytes([0, 1] * 8) for _ in range(16))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 3, 0, 0, 0))
                     + png_chunk(b"PLTE", bytes([0, 0, 0, 0, 255, 0])) + png_chunk(b"IDAT", zlib.compress(raw))
                     + png_chunk(b"IEND", b""))
    return path


def noise(h: int = SIZE, w: int = SIZE, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------- one folder, every case


def build_messy_good_folder(good: Path) -> dict[str, str | None]:
    """Fill ``good`` with one file per case; returns name -> expected reason fragment (None = usable)."""
    expected: dict[str, str | None] = {}
    for i in range(4):
        write(good / f"ok{i}.png", noise(seed=i))
        expected[f"ok{i}.png"] = None
    cut = write(good / "truncated.png", noise(seed=9))
    cut.write_bytes(cut.read_bytes()[: len(cut.read_bytes()) // 2])
    expected["truncated.png"] = "truncated PNG"
    garbage = good / "corrupt.bmp"
    garbage.write_bytes(b"BM" + b"\xff" * 60)  # BMP magic, nonsense header
    expected["corrupt.bmp"] = "BMP"
    (good / "zero.png").write_bytes(b"")
    expected["zero.png"] = "0 bytes"
    bgr = np.zeros((SIZE, SIZE, 3), np.uint8)
    bgr[:] = (30, 120, 220)
    write(good / "jpeg_named.png", bgr, ext=".jpg")  # wrong extension: the content decides
    expected["jpeg_named.png"] = None
    (good / "text_named.png").write_text("this is a text file, not an image\n")
    expected["text_named.png"] = "not a supported image format"
    write(good / "deep16.png", np.full((SIZE, SIZE, 3), 40000, np.uint16))
    write(good / "deep16.tif", np.full((SIZE, 20), 4095, np.uint16))  # 12-bit data in 16-bit TIFF
    write(good / "gray.png", np.full((SIZE, SIZE), 90, np.uint8))
    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 200, 255
    write(good / "rgba.png", rgba)
    palette_png(good / "palette.png")
    write(good / "wide.png", noise(24, 80, seed=5))  # mixed sizes within the dataset
    write(good / "Prüfteil_检查.png", noise(seed=6))  # non-ASCII file name
    for name in ("deep16.png", "deep16.tif", "gray.png", "rgba.png", "palette.png", "wide.png",
                 "Prüfteil_检查.png"):
        expected[name] = None
    huge_png(good / "huge.png")
    expected["huge.png"] = "megapixels"
    os.symlink(good / "ok0.png", good / "link.png")  # followed
    expected["link.png"] = None
    os.symlink(good / "was_deleted.png", good / "dangling.png")
    expected["dangling.png"] = "broken symbolic link"
    return expected


def test_every_bad_image_is_converted_or_listed_with_a_reason(tmp_path: Path) -> None:
    root = tmp_path / "Teil_ß"  # non-ASCII dataset folder too
    expected = build_messy_good_folder(root / "good")
    write(root / "scratch" / "s1.png", noise(seed=7))

    ds = load_dataset(root, test_fraction=0.2)
    unreadable = {p.name: why for p, why in ds.report.unreadable}
    kept = {r.path.name for r in ds.records if r.is_good}
    for name, reason in expected.items():
        if reason is None:
            assert name in kept, f"{name} should have been imported"
            assert name not in unreadable
        else:
            assert name not in kept, f"{name} should have been skipped"
            assert reason in unreadable[name], (name, unreadable[name])
    summary = ds.report.summary()
    assert f"{len(unreadable)} unreadable file(s) skipped" in summary
    assert "dangling.png: broken symbolic link" in summary

    for rec in ds.records:  # everything kept really reads as RGB uint8
        img = read_image(rec.path)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8


def test_unusual_formats_convert_to_rgb(tmp_path: Path) -> None:
    good = tmp_path / "g"
    build_messy_good_folder(good)
    jpeg_as_png = read_image(good / "jpeg_named.png")
    assert jpeg_as_png.shape == (SIZE, SIZE, 3)
    assert np.abs(jpeg_as_png.astype(int) - (220, 120, 30)).max() <= 3  # JPEG is lossy
    assert (read_image(good / "deep16.png") == round(40000 / 257)).all()
    tif = read_image(good / "deep16.tif")
    assert tif.shape == (SIZE, 20, 3) and (tif == 255).all()  # 12-bit range fills the 8-bit range
    assert (read_image(good / "gray.png") == 90).all()
    assert (read_image(good / "rgba.png") == 200).all()
    pal = read_image(good / "palette.png")
    assert tuple(pal[0, 0]) == (0, 0, 0) and tuple(pal[0, 1]) == (0, 255, 0)
    assert read_image(good / "link.png").tolist() == read_image(good / "ok0.png").tolist()
    assert read_image(good / "wide.png").shape == (24, 80, 3)


def test_huge_image_refused_from_header_before_decoding(tmp_path: Path, monkeypatch) -> None:
    path = huge_png(tmp_path / "huge.png")
    assert data_io.image_dimensions(path) == (20000, 20000)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the huge image was handed to the decoder")

    monkeypatch.setattr(data_io.cv2, "imdecode", no_decoding)
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    msg = str(err.value)
    assert str(path) in msg and "20000x20000 pixels (400 megapixels)" in msg
    assert f"limit of {data_io.MAX_IMAGE_PIXELS // 1_000_000} megapixels" in msg and "tiles" in msg
    assert "megapixels" in (probe_image(path) or "")
    # just under the limit is not refused by the limit (the fake data then fails to decode)
    monkeypatch.undo()
    small = huge_png(tmp_path / "small.png", 3000, 3000)
    assert "megapixels" not in (probe_image(small) or "")


def test_unreadable_file_is_listed(tmp_path: Path, monkeypatch) -> None:
    """chmod 000 does not stop root (the tests' user in CI), so the denial is simulated."""
    root = tmp_path / "part"
    for i in range(3):
        write(root / "good" / f"{i}.png", noise(seed=i))
    locked = root / "good" / "1.png"
    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    ds = load_dataset(root, test_fraction=0.0)
    assert dict(ds.report.unreadable) == {locked: "cannot open the file (Permission denied)"}
    assert [r.path.name for r in ds.train] == ["0.png", "2.png"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="running as root: chmod 000 does not block reads (simulated in the test above)")
def test_chmod_000_file_is_listed(tmp_path: Path) -> None:
    root = tmp_path / "part"
    for i in range(3):
        write(root / "good" / f"{i}.png", noise(seed=i))
    locked = root / "good" / "1.png"
    locked.chmod(0)
    try:
        ds = load_dataset(root, test_fraction=0.0)
    finally:
        locked.chmod(0o644)
    assert "Permission denied" in dict(ds.report.unreadable)[locked]


def test_unlistable_folder_is_listed(tmp_path: Path, monkeypatch) -> None:
    """A defect folder that cannot be listed (permissions) is reported, the rest imports."""
    root = tmp_path / "part"
    for i in range(3):
        write(root / "good" / f"{i}.png", noise(seed=i))
    write(root / "scratch" / "a.png", noise(seed=5))
    locked = root / "scratch"
    real_iterdir = Path.iterdir

    def iterdir(self: Path):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    ds = load_dataset(root, test_fraction=0.0)
    assert dict(ds.report.unreadable) == {locked: "cannot list this folder (Permission denied)"}
    assert len(ds.train) == 3 and not ds.test


# ----------------------------------------------------------------------------- the CLI never crashes


def test_cli_trains_on_messy_folder_and_skips_bad_files_when_predicting(tmp_path: Path, capsys,
                                                                        fast_extractor) -> None:
    root = tmp_path / "data"
    build_messy_good_folder(root / "good")
    write(root / "scratch" / "s1.png", noise(seed=7))
    model = tmp_path / "model"
    assert main(["train", "--data", str(root), "--method", "padim", "--param", "image_size=64",
                 "--out", str(model), "-q"]) == 0
    out = capsys.readouterr().out
    assert "unreadable file(s) skipped" in out and "huge.png" in out

    pred = tmp_path / "pred"
    assert main(["predict", "--model", str(model), str(root / "good"), "--out", str(pred), "-q",
                 "--no-overlays"]) == 0
    rows = {Path(r["path"]).name: r for r in csv.DictReader(open(pred / "scores.csv", encoding="utf-8"))}
    for name in ("truncated.png", "zero.png", "text_named.png", "huge.png", "corrupt.bmp"):
        assert rows[name]["decision"] == "unreadable"
    assert rows["Prüfteil_检查.png"]["score"] and rows["deep16.tif"]["score"]
    err = capsys.readouterr().err
    assert "skipped: Cannot read image" in err and "megapixels" in err


def test_cli_with_only_bad_images_exits_2_with_message(tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    good = root / "good"
    good.mkdir(parents=True)
    (good / "zero.png").write_bytes(b"")
    huge_png(good / "huge.png")
    (good / "notes.png").write_text("hello")
    assert main(["train", "--data", str(root), "--method", "padim", "--out", str(tmp_path / "m"), "-q"]) \
        == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "error: No good training images" in err and "3 unreadable file(s) were skipped" in err
    assert not (tmp_path / "m").exists()

    assert main(["predict", "--model", str(tmp_path / "nomodel"), str(good / "huge.png"),
                 "--out", str(tmp_path / "o")]) == EXIT_BAD_INPUT


# ----------------------------------------------------------------------------- fixtures


_EXTRACTORS: dict = {}


@pytest.fixture
def fast_extractor(monkeypatch):
    """Build each frozen backbone once per test session (building it is the slow part of a CLI run)."""
    from workbench.core.methods import base

    real = base.create_extractor

    def cached(spec, layers, device):
        key = (spec, tuple(layers), str(device))
        if key not in _EXTRACTORS:
            _EXTRACTORS[key] = real(spec, layers, device)
        return _EXTRACTORS[key]

    monkeypatch.setattr(base, "create_extractor", cached)
