"""Dataset import: layouts, unusual image formats, broken files and error messages."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from workbench.core.data import (
    GOOD,
    DatasetError,
    ImageReadError,
    detect_layout,
    list_categories,
    load_dataset,
    load_folder,
    load_mvtec,
    load_visa,
    probe_image,
    read_image,
    read_mask,
)

SIZE = 32


# ----------------------------------------------------------------------------- helpers


def write(path: Path, img: np.ndarray | None = None, value: int = 128) -> Path:
    """Write an image with cv2 (imencode + write_bytes so non-ASCII paths work everywhere)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if img is None:
        img = np.full((SIZE, SIZE, 3), value, np.uint8)
    ok, buf = cv2.imencode(path.suffix, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def write_mask(path: Path) -> Path:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[8:16, 8:16] = 255
    return write(path, mask)


def truncated_png(path: Path) -> Path:
    write(path, (np.random.default_rng(0).random((SIZE, SIZE, 3)) * 255).astype(np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_mvtec_category(cat: Path) -> Path:
    for i in range(3):
        write(cat / "train" / "good" / f"{i:03d}.png")
    write(cat / "test" / "good" / "000.png")
    write(cat / "test" / "scratch" / "000.png")
    write(cat / "test" / "scratch" / "001.png")  # no mask -> missing_masks
    write_mask(cat / "ground_truth" / "scratch" / "000_mask.png")
    write_mask(cat / "ground_truth" / "scratch" / "007_mask.png")  # orphan
    return cat


# ----------------------------------------------------------------------------- MVTec


def test_mvtec_category_folder(tmp_path: Path) -> None:
    cat = make_mvtec_category(tmp_path / "bottle")
    truncated_png(cat / "test" / "scratch" / "002.png")
    (cat / "train" / "good" / "zero.png").write_bytes(b"")
    write(cat / "validation" / "good" / "000.png")

    ds = load_mvtec(cat)
    rep = ds.report
    assert ds.name == "bottle" and ds.layout == "mvtec"
    assert [r.path.name for r in ds.train] == ["000.png", "001.png", "002.png"]
    assert rep.counts[("test", "scratch")] == 2 and rep.counts[("test", GOOD)] == 1
    assert rep.counts[("val", GOOD)] == 1
    scratch = {r.path.name: r for r in ds.test if r.label == "scratch"}
    assert scratch["000.png"].mask_path == cat / "ground_truth" / "scratch" / "000_mask.png"
    assert rep.missing_masks == [cat / "test" / "scratch" / "001.png"]
    assert rep.orphan_masks == [cat / "ground_truth" / "scratch" / "007_mask.png"]
    bad = dict(rep.unreadable)
    assert "empty" in bad[cat / "train" / "good" / "zero.png"]
    assert "truncated" in bad[cat / "test" / "scratch" / "002.png"]
    assert ds.defect_types == ["scratch"]
    assert "unreadable" in rep.summary()


def test_mvtec_root_with_category_and_errors(tmp_path: Path) -> None:
    make_mvtec_category(tmp_path / "bottle")
    make_mvtec_category(tmp_path / "cable")
    ds = load_mvtec(tmp_path, "cable")
    assert ds.name == "cable" and len(ds.train) == 3
    assert list_categories(tmp_path) == ["bottle", "cable"]
    with pytest.raises(DatasetError, match="bottle, cable"):
        load_mvtec(tmp_path)
    with pytest.raises(DatasetError, match="'screw' not found.*bottle, cable"):
        load_dataset(tmp_path, "screw")
    assert load_mvtec(tmp_path / "bottle", "bottle").name == "bottle"
    with pytest.raises(DatasetError, match="itself one category"):
        load_mvtec(tmp_path / "bottle", "cable")


def test_mvtec_stem_only_mask_and_no_good_images(tmp_path: Path) -> None:
    cat = tmp_path / "pill"
    write(cat / "test" / "crack" / "000.png")
    write_mask(cat / "ground_truth" / "crack" / "000.png")
    with pytest.raises(DatasetError) as err:
        load_dataset(cat)
    msg = str(err.value)
    assert str(cat) in msg and "needs good images to train on" in msg
    assert str(cat / "train" / "good") in msg


# ----------------------------------------------------------------------------- image reading


def test_read_grayscale_rgba_16bit_float(tmp_path: Path) -> None:
    gray = np.full((SIZE, 20), 77, np.uint8)  # non-square on purpose
    img = read_image(write(tmp_path / "gray.png", gray))
    assert img.shape == (SIZE, 20, 3) and img.dtype == np.uint8 and (img == 77).all()

    bgra = np.zeros((SIZE, SIZE, 4), np.uint8)
    bgra[..., :3] = (30, 200, 10)  # BGR -> RGB (10, 200, 30)
    bgra[:, :16, 3] = 255
    img = read_image(write(tmp_path / "rgba.png", bgra))
    assert tuple(img[0, 0]) == (10, 200, 30)
    assert tuple(img[0, 31]) == (0, 0, 0)  # transparent -> black

    twelve_bit = np.full((SIZE, SIZE), 4095, np.uint16)
    twelve_bit[0, 0] = 0
    img = read_image(write(tmp_path / "deep.png", twelve_bit))
    assert img.dtype == np.uint8 and tuple(img[1, 1]) == (255, 255, 255) and img[0, 0, 0] == 0
    full = np.full((SIZE, SIZE), 65535, np.uint16)
    full[0, 0] = 32768
    assert read_image(write(tmp_path / "full.png", full))[0, 0, 0] == 128
    assert read_image(tmp_path / "deep.png", bit_depth=16)[1, 1, 0] == 16  # 4095 / 257

    flt = np.full((SIZE, SIZE), 0.5, np.float32)
    img = read_image(write(tmp_path / "float.tiff", flt))
    assert img.dtype == np.uint8 and img[0, 0, 0] == 128


def test_read_non_ascii_path_and_palette(tmp_path: Path) -> None:
    bgr = np.zeros((SIZE, SIZE, 3), np.uint8)
    bgr[..., 2] = 250  # red
    img = read_image(write(tmp_path / "Prüfteil_检查" / "öl.png", bgr))
    assert tuple(img[5, 5]) == (250, 0, 0)

    palette_png = tmp_path / "palette.png"
    palette_png.write_bytes(_palette_png([[0, 1], [1, 0]], [(0, 0, 0), (0, 255, 0)]))
    img = read_image(palette_png)
    assert img.shape == (2, 2, 3) and tuple(img[0, 1]) == (0, 255, 0)


def test_read_errors_name_file_problem_and_fix(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError) as err:
        read_image(empty)
    assert str(empty) in str(err.value) and "0 bytes" in str(err.value)
    assert "copy it again" in str(err.value) and isinstance(err.value, ValueError)

    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert "not a supported image format" in (probe_image(text) or "")
    assert "truncated" in (probe_image(truncated_png(tmp_path / "cut.png")) or "")
    noise = (np.random.default_rng(1).random((SIZE, SIZE, 3)) * 255).astype(np.uint8)
    jpg = write(tmp_path / "cut.jpg", noise)
    assert probe_image(jpg) is None
    jpg.write_bytes(jpg.read_bytes()[:-40])
    assert probe_image(jpg) is not None
    with pytest.raises(ImageReadError):
        read_mask(tmp_path / "missing.png")


def test_read_mask_binarises_and_resizes(tmp_path: Path) -> None:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[:, 16:] = 1  # any non-zero value is defect
    path = write(tmp_path / "m.png", mask)
    m = read_mask(path)
    assert m.dtype == np.bool_ and m.shape == (SIZE, SIZE) and m[:, 16:].all() and not m[:, :16].any()
    small = read_mask(path, shape=(8, 8, 3))
    assert small.shape == (8, 8) and small[:, 4:].all() and not small[:, :4].any()
    big = read_mask(path, shape=(64, 64))
    assert big.shape == (64, 64) and big.sum() == 64 * 32


# ----------------------------------------------------------------------------- VisA


def test_visa_csv_layout(tmp_path: Path) -> None:
    root = tmp_path / "VisA"
    rows = ["object,split,label,image,mask"]
    for i in range(3):
        write(root / "candle" / "Data" / "Images" / "Normal" / f"{i:04d}.JPG")
        rows.append(f"candle,train,normal,candle/Data/Images/Normal/{i:04d}.JPG,")
    write(root / "candle" / "Data" / "Images" / "Normal" / "0009.JPG")
    rows.append("candle,test,normal,candle/Data/Images/Normal/0009.JPG,")
    write(root / "candle" / "Data" / "Images" / "Anomaly" / "000.JPG")
    write_mask(root / "candle" / "Data" / "Masks" / "Anomaly" / "000.png")
    rows.append("candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png")
    write(root / "pcb1" / "Data" / "Images" / "Normal" / "0000.JPG")
    rows.append("pcb1,train,normal,pcb1/Data/Images/Normal/0000.JPG,")
    (root / "split_csv").mkdir()
    (root / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")

    assert detect_layout(root) == "visa"
    assert list_categories(root) == ["candle", "pcb1"]
    ds = load_dataset(root, "candle")
    assert ds.layout == "visa" and len(ds.train) == 3
    anomalies = [r for r in ds.test if r.is_anomalous]
    assert [r.label for r in anomalies] == ["anomaly"]
    assert anomalies[0].mask_path is not None and anomalies[0].mask_path.name == "000.png"
    assert ds.report.counts[("test", GOOD)] == 1
    with pytest.raises(DatasetError, match="candle, pcb1"):
        load_visa(root)


def test_visa_raw_layout_split(tmp_path: Path) -> None:
    cat = tmp_path / "candle"
    for i in range(10):
        write(cat / "Data" / "Images" / "Normal" / f"{i:04d}.JPG")
    write(cat / "Data" / "Images" / "Anomaly" / "000.JPG")
    write_mask(cat / "Data" / "Masks" / "Anomaly" / "000.png")
    ds = load_visa(cat)
    assert len(ds.train) == 8 and ds.report.counts[("test", GOOD)] == 2
    assert ds.test[-1].mask_path is not None
    again = load_visa(cat)
    assert [r.path for r in again.records] == [r.path for r in ds.records]


# ----------------------------------------------------------------------------- plain folders


def test_folder_convention_with_masks(tmp_path: Path) -> None:
    root = tmp_path / "part"
    for i in range(10):
        write(root / "good" / f"g{i}.png")
    write(root / "scratch" / "s1.png")
    write(root / "scratch" / "s2.png")
    write(root / "dent" / "d1.bmp")
    write_mask(root / "masks" / "s1_mask.png")
    write_mask(root / "masks" / "dent" / "d1.png")
    write_mask(root / "masks" / "zz.png")  # orphan
    (root / "good" / "readme.txt").write_text("hi")

    assert detect_layout(root) == "folder"
    ds = load_dataset(root)
    assert ds.layout == "folder" and ds.defect_types == ["dent", "scratch"]
    assert len(ds.train) == 8 and ds.report.counts[("test", GOOD)] == 2
    masks = {r.path.name: r.mask_path for r in ds.test if r.is_anomalous}
    assert masks == {"s1.png": root / "masks" / "s1_mask.png", "s2.png": None,
                     "d1.bmp": root / "masks" / "dent" / "d1.png"}
    assert ds.report.missing_masks == [root / "scratch" / "s2.png"]
    assert ds.report.orphan_masks == [root / "masks" / "zz.png"]
    assert any("readme.txt" in w for w in ds.report.warnings)
    split_again = load_folder(root)
    assert [r.split for r in split_again.records] == [r.split for r in ds.records]


def test_folder_explicit_dirs(tmp_path: Path) -> None:
    for i in range(4):
        write(tmp_path / "ok_parts" / f"{i}.png")
    write(tmp_path / "rejects" / "crack" / "a.png")
    write(tmp_path / "rejects" / "stain" / "a.png")
    write_mask(tmp_path / "gt" / "crack" / "a_mask.png")
    ds = load_folder(tmp_path, good_dir="ok_parts", defect_dirs=["rejects"], mask_dir="gt",
                     test_fraction=0.25)
    assert len(ds.train) == 3 and ds.defect_types == ["crack", "stain"]
    by_label = {r.label: r.mask_path for r in ds.test if r.is_anomalous}
    assert by_label == {"crack": tmp_path / "gt" / "crack" / "a_mask.png", "stain": None}


# ----------------------------------------------------------------------------- detection / errors


def test_detect_layouts_and_errors(tmp_path: Path) -> None:
    assert detect_layout(make_mvtec_category(tmp_path / "m" / "bottle")) == "mvtec"
    assert detect_layout(tmp_path / "m") == "mvtec"

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError) as err:
        load_dataset(empty)
    assert str(empty) in str(err.value) and "is empty" in str(err.value)

    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope")

    odd = tmp_path / "odd"
    write(odd / "pictures" / "a.png")
    with pytest.raises(DatasetError) as err:
        detect_layout(odd)
    msg = str(err.value)
    assert "pictures/" in msg and "MVTec" in msg and "VisA" in msg and "Folder" in msg

    only_bad = tmp_path / "only_bad"
    write(only_bad / "good" / "broken.png").write_bytes(b"")
    write(only_bad / "scratch" / "a.png")
    with pytest.raises(DatasetError, match="needs good images to train on"):
        load_dataset(only_bad)


# ----------------------------------------------------------------------------- tiny PNG writer


def _palette_png(pixels: list[list[int]], palette: list[tuple[int, int, int]]) -> bytes:
    """An 8-bit palette PNG (cv2 cannot write these)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = len(pixels), len(pixels[0])
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", b"".join(bytes(c) for c in palette))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
