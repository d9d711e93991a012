"""Fuzzing: broken dataset trees and damaged model packages raise only documented errors.

Importers (MVTec, VisA with and without CSV, plain folders, layout detection) get random
trees: random files, random bytes named as images, truncated images, random CSV rows,
missing folders. Only :class:`DatasetError` may escape an import, and every image it keeps
must read (or raise :class:`ImageReadError`). The model loader gets mutated ``model.json``
and weights; only :class:`ModelPackageError` may escape.

Runs derandomized with a fixed number of examples, so CI is reproducible and stays within
about 20 seconds; ``WORKBENCH_FUZZ=long`` runs many more random examples.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from workbench.core.backbones import BackboneError  # noqa: E402
from workbench.core.data import (  # noqa: E402
    DatasetError,
    ImageReadError,
    detect_layout,
    list_categories,
    load_dataset,
    read_image,
    read_mask,
)
from workbench.core.files import file_sha256  # noqa: E402
from workbench.core.methods import create_method  # noqa: E402
from workbench.core.methods.package import ModelPackageError, load_model, save_model  # noqa: E402

LONG = os.environ.get("WORKBENCH_FUZZ") == "long"
FUZZ = settings(max_examples=2000 if LONG else 40, deadline=None if LONG else 10_000, derandomize=not LONG,
                database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ----------------------------------------------------------------------------- dataset trees

DIRS = ["", "train", "train/good", "train/bad", "test", "test/good", "test/crack", "test_public/good",
        "validation/good", "ground_truth/crack", "test/ground_truth/crack", "good", "ok", "scratch",
        "scratch/deep", "masks", "masks/scratch", "cat", "cat/train/good", "cat/test/crack",
        "cat/Data/Images/Normal", "cat/Data/Images/Anomaly", "cat/Data/Masks/Anomaly",
        "Data/Images/Normal", "Data/Images/Anomaly", "Data/Masks/Anomaly", "split_csv"]
NAMES = ["000.png", "001.png", "000_mask.png", "a.jpg", "a.JPG", "b.bmp", "c.tif", "d.webp", "e.tiff",
         "1cls.csv", "notes.txt", ".hidden.png", "ü_名.png", "good", "crack"]
CSV_WORDS = ["object", "split", "label", "image", "mask", "cat", "train", "test", "val", "bogus",
             "normal", "anomaly", "good", "", "cat/Data/Images/Normal/000.png",
             "cat/Data/Images/Anomaly/a.JPG", "cat/Data/Masks/Anomaly/000_mask.png", "../../etc/passwd",
             "/abs/path.png", "\x00", "é", '"', ",", "\n"]


def _png(h: int, w: int, value: int) -> bytes:
    return cv2.imencode(".png", np.full((h, w, 3), value, np.uint8))[1].tobytes()


def _huge_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 32)) + chunk(b"IEND", b""))


VALID = {"png": _png(12, 16, 90), "png_small": _png(6, 8, 200),
         "jpg": cv2.imencode(".jpg", np.full((12, 16, 3), 90, np.uint8))[1].tobytes(),
         "bmp": cv2.imencode(".bmp", np.full((12, 16, 3), 90, np.uint8))[1].tobytes(),
         "tif16": cv2.imencode(".tif", np.full((12, 16), 4000, np.uint16))[1].tobytes()}

csv_text = st.lists(st.lists(st.sampled_from(CSV_WORDS) | st.text(max_size=8), min_size=0, max_size=7),
                    max_size=8).map(lambda rows: "\n".join(",".join(r) for r in rows))
content = st.one_of(
    st.sampled_from(sorted(VALID)).map(VALID.__getitem__),
    st.binary(max_size=120),  # random bytes
    st.tuples(st.sampled_from(sorted(VALID)), st.integers(0, 200)).map(lambda t: VALID[t[0]][: t[1]]),  # cut
    st.binary(max_size=60).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),  # PNG magic, garbage after it
    st.binary(max_size=60).map(lambda b: b"\xff\xd8\xff" + b + b"\xff\xd9"),  # JPEG markers around garbage
    st.just(_huge_png()),
    st.just(b"object,split,label,image,mask\n"),  # a CSV with a header only
    csv_text.map(lambda t: ("object,split,label,image,mask\n" + t).encode("utf-8", "surrogatepass")),
    st.just("DIR"),  # a folder where a file is expected
)
entry = st.tuples(st.sampled_from(DIRS), st.sampled_from(NAMES), content)
tree = st.lists(entry, max_size=25)


def _build(root: Path, entries) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for folder, name, data in entries:
        path = root / folder / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if data == "DIR":
                path.mkdir(exist_ok=True)
            else:
                path.write_bytes(data)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            pass  # a file where a folder should be, or the reverse: keep the first one


@FUZZ
@given(entries=tree, layout=st.sampled_from(["auto", "mvtec", "visa", "folder"]),
       category=st.sampled_from([None, "cat", "crack", "nope"]))
def test_importers_raise_only_dataset_errors(entries, layout, category) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        _build(root, entries)
        try:
            if layout == "auto":
                detect_layout(root)
                list_categories(root)
            ds = load_dataset(root, category=category, layout=layout)
        except DatasetError as exc:
            assert str(exc)  # a message for the user
            return
        assert ds.train, "an import without good training images must raise"
        for rec in ds.records:  # everything kept was probed: it reads, or fails with a clear error
            try:
                img = read_image(rec.path)
                assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
                if rec.mask_path is not None:
                    assert read_mask(rec.mask_path, img.shape).shape == img.shape[:2]
            except ImageReadError:
                pass
        ds.report.summary()


# ----------------------------------------------------------------------------- model packages

_PACKAGE: dict[str, bytes] = {}


def _base_package() -> dict[str, bytes]:
    """model.json and weights of a small valid PaDiM package (built once)."""
    if not _PACKAGE:
        model = create_method("padim", device="cpu", image_size=64)
        d, positions = int(model.params["n_features"]), (64 // int(model.params["grid_stride"])) ** 2
        g = torch.Generator().manual_seed(0)
        model.load_state_tensors({"channel_index": torch.randperm(176, generator=g)[:d].sort().values,
                                  "mean": torch.randn(positions, d, generator=g),
                                  "inv_cov": torch.eye(d).repeat(positions, 1, 1)})
        with tempfile.TemporaryDirectory() as tmp:
            folder = save_model(model, Path(tmp) / "m")
            _PACKAGE.update({p.name: p.read_bytes() for p in folder.iterdir()})
    return _PACKAGE


json_value = st.recursive(st.none() | st.booleans() | st.integers(-2, 2**40) | st.floats(allow_nan=False)
                          | st.text(max_size=12) | st.sampled_from(["padim", "patchcore", "embedded", "imagenet"]),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=3),
                          max_leaves=6)
KEYS = ["format_version", "method", "params", "backbone", "input", "weights_file", "weights_sha256",
        "thresholds", "score_stats"]
NESTED = {"params": ["image_size", "n_features", "grid_stride", "layers", "batch_size", "backbone"],
          "backbone": ["name", "weights", "weights_sha256"], "input": ["size", "channels", "mean"]}

meta_mutation = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(KEYS), json_value),
    st.tuples(st.just("delete"), st.sampled_from(KEYS), st.none()),
    st.tuples(st.just("nested"), st.sampled_from(sorted(NESTED)), st.tuples(st.integers(0, 5), json_value)),
    st.tuples(st.just("truncate"), st.just(""), st.integers(0, 2000)),
    st.tuples(st.just("flip"), st.just(""), st.tuples(st.integers(0, 2000), st.integers(1, 255))),
    st.tuples(st.just("bytes"), st.just(""), st.binary(max_size=64)),
    st.tuples(st.just("none"), st.just(""), st.none()),
)
weights_mutation = st.one_of(
    st.tuples(st.just("none"), st.none()),
    st.tuples(st.just("bytes"), st.binary(max_size=256)),
    st.tuples(st.just("truncate"), st.integers(0, 4000)),
    st.tuples(st.just("flip"), st.tuples(st.integers(0, 400), st.integers(1, 255))),
    st.tuples(st.just("header"), st.tuples(st.sampled_from(["mean", "inv_cov", "channel_index"]),
                                           st.lists(st.integers(0, 300), max_size=4),
                                           st.sampled_from(["F32", "F16", "I64", "BOOL", "XX"]))),
    st.tuples(st.just("delete"), st.none()),
)


def _mutate_meta(raw: bytes, mutation) -> bytes:
    kind, key, value = mutation
    if kind in ("truncate", "flip", "bytes", "none"):
        if kind == "truncate":
            return raw[: value]
        if kind == "flip":
            pos, xor = value
            pos %= max(len(raw), 1)
            return raw[:pos] + bytes([raw[pos] ^ xor]) + raw[pos + 1:]
        return value if kind == "bytes" else raw
    meta = json.loads(raw)
    if kind == "set":
        meta[key] = value
    elif kind == "delete":
        meta.pop(key, None)
    else:
        index, new = value
        names = NESTED[key]
        meta[key][names[index % len(names)]] = new
    return json.dumps(meta).encode()


def _mutate_weights(raw: bytes, mutation) -> bytes | None:
    kind, value = mutation
    if kind == "none":
        return raw
    if kind == "delete":
        return None
    if kind == "bytes":
        return value
    if kind == "truncate":
        return raw[:value]
    if kind == "flip":
        pos, xor = value
        return raw[:pos] + bytes([raw[pos] ^ xor]) + raw[pos + 1:]
    name, shape, dtype = value  # rewrite one tensor's entry in the safetensors header
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header[name]["shape"], header[name]["dtype"] = shape, dtype
    new = json.dumps(header).encode()
    return struct.pack("<Q", len(new)) + new + raw[8 + n:]


@pytest.fixture(scope="module")
def no_backbone_downloads():
    """Cache the frozen backbone; never try the network for 'imagenet' weights."""
    from workbench.core.methods import base

    cache: dict = {}
    real = base.create_extractor

    def cached(spec, layers, device):
        if spec.weights == "imagenet":
            raise BackboneError("no network in the tests")
        key = (spec, tuple(layers), str(device))
        if key not in cache:
            cache[key] = real(spec, layers, device)
        return cache[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(base, "create_extractor", cached)
        yield


@FUZZ
@given(meta_mutation=meta_mutation, weights_mutation=weights_mutation, fix_checksum=st.booleans())
def test_model_loader_raises_only_model_package_errors(meta_mutation, weights_mutation, fix_checksum,
                                                       no_backbone_downloads) -> None:
    base = _base_package()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "m"
        folder.mkdir()
        weights = _mutate_weights(base["weights.safetensors"], weights_mutation)
        if weights is not None:
            (folder / "weights.safetensors").write_bytes(weights)
        raw_meta = base["model.json"]
        if fix_checksum and weights is not None:  # get past the checksum to the tensors
            meta = json.loads(raw_meta)
            meta["weights_sha256"] = file_sha256(folder / "weights.safetensors")
            raw_meta = json.dumps(meta).encode()
        (folder / "model.json").write_bytes(_mutate_meta(raw_meta, meta_mutation))
        try:
            model = load_model(folder, device="cpu")
        except ModelPackageError as exc:
            assert str(exc)
            return
        assert model.fitted  # and it has scored an image while loading (load_model's smoke test)


def test_fuzz_helpers_build_what_they_claim(tmp_path: Path) -> None:
    """The generators are not vacuous: a valid tree imports and the base package loads."""
    _build(tmp_path / "ds", [("train/good", "000.png", VALID["png"]), ("train/good", "001.png", VALID["jpg"]),
                             ("test/crack", "000.png", VALID["png"]),
                             ("ground_truth/crack", "000_mask.png", VALID["png_small"])])
    ds = load_dataset(tmp_path / "ds")
    assert len(ds.train) == 2 and ds.test[0].mask_path is not None
    assert any("differ in size" in w for w in ds.report.warnings)
    folder = tmp_path / "m"
    folder.mkdir()
    for name, data in _base_package().items():
        (folder / name).write_bytes(data)
    assert load_model(folder, verify=False).name == "padim"
    shutil.rmtree(folder)
