"""Label import and workspace errors (issue "Reliability round 2").

COCO files with impossible geometry (odd-length polygons, RLE sizes that do not match the
image or that declare gigapixels, wrong field types) raise the documented ``LabelError``
naming the file; a workspace database with corrupt pages raises ``WorkspaceError`` saying
what to do, on reads and on writes. Property-based tests (hypothesis) check that any mutation
of a COCO file ends in labels or a ``LabelError``, and that compressed RLE decodes exactly as
pycocotools encodes it.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from workbench.core.data import load_dataset  # noqa: E402
from workbench.core.labels import LabelError, read_coco_labels  # noqa: E402
from workbench.core.labels.exchange import decode_segmentation  # noqa: E402
from workbench.core.workspace import Workspace  # noqa: E402
from workbench.core.workspace.store import DB_FILE, WorkspaceError  # noqa: E402

H, W = 24, 32
PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    (root / "good").mkdir()
    (root / "scratch").mkdir()
    for i in range(5):
        cv2.imwrite(str(root / "good" / f"g{i}.png"), np.full((H, W, 3), 30 * i, np.uint8))
    for i in range(2):
        cv2.imwrite(str(root / "scratch" / f"s{i}.png"), np.full((H, W, 3), 200, np.uint8))
    return load_dataset(root, layout="folder")


def coco(**image_changes) -> dict:
    image = {"id": 1, "file_name": "scratch/s0.png", "width": W, "height": H, **image_changes}
    return {"images": [image, {"id": 2, "file_name": "good/g0.png", "width": W, "height": H}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "area": 81.0,
                             "segmentation": [[1, 1, 10, 1, 10, 10, 1, 10]]}],
            "categories": [{"id": 1, "name": "dent"}]}


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(data))
    return path


def with_segmentation(seg) -> dict:
    data = coco()
    data["annotations"][0]["segmentation"] = seg
    return data


def test_a_valid_coco_file_imports(dataset, tmp_path):
    items, report = read_coco_labels(write(tmp_path, coco()), dataset)
    assert report.images == 2 and report.masks == 1
    (item,) = [i for i in items if i.mask is not None]
    assert item.defect_class == "dent" and item.mask.shape == (H, W) and item.mask.sum() == 100


@pytest.mark.parametrize("data, message", [
    (with_segmentation([[1, 1, 10, 1, 10]]), "polygon 0 has 5 coordinates"),
    (with_segmentation([[1, 1, "x", 1, 10, 10]]), "valid number"),
    (with_segmentation([[1, 1, float("nan"), 1, 10, 10]]), "finite number"),
    (with_segmentation({"size": [10, 10], "counts": [100]}), "RLE mask is 10x10 .* but its image is 24x32"),
    (with_segmentation({"size": [H, W], "counts": [5, 3]}), "add up to 8 pixels"),
    (with_segmentation({"size": [100_000, 100_000], "counts": [10**10]}), "above the limit of 200 megapixels"),
    (with_segmentation({"size": [H, W], "counts": "~~~"}), "compressed RLE string"),
    (with_segmentation({"size": [H, W], "counts": ""}), "add up to 0 pixels"),
    (with_segmentation({"size": "24x32", "counts": [768]}), "'size'"),
    (with_segmentation("a mask"), "segmentation"),
    (coco(width="wide"), "'images.0.width'"),
    (coco(height=-4), "'images.0.height'"),
    (coco(width=200_000, height=200_000), "above the limit"),
    ({**coco(), "annotations": {"1": {}}}, "'annotations'"),
    ({**coco(), "categories": ["dent"]}, "'categories.0'"),
    ({**coco(), "annotations": [{"segmentation": []}]}, "'annotations.0.image_id'"),
    (coco(workbench={"reviewed_mask": [[1, 2, 3]], "reviewed": True}), "polygon 0 has 3 coordinates"),
    (coco(workbench={"reviewed": True, "verdict": "maybe"}), "verdict must be 'OK', 'NG' or null"),
])
def test_impossible_geometry_and_wrong_types_raise_label_error(dataset, tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(LabelError, match=message) as err:
        read_coco_labels(path, dataset)
    assert str(path) in str(err.value)


# ----------------------------------------------------------------------------- properties

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                          max_leaves=12)
geometry = st.one_of(
    st.lists(st.lists(st.one_of(st.integers(-50, 80), st.floats(-1e9, 1e9)), max_size=9), max_size=3),
    st.fixed_dictionaries({"size": st.lists(st.integers(-2, 40), min_size=0, max_size=3),
                           "counts": st.one_of(st.lists(st.integers(-5, 800), max_size=6),
                                               st.text(alphabet=st.characters(min_codepoint=40, max_codepoint=130),
                                                       max_size=12))}),
    json_value)
COCO_PATHS = [("images", 0, "width"), ("images", 0, "height"), ("images", 0, "file_name"), ("images", 0, "id"),
              ("images", 0, "workbench"), ("annotations", 0, "segmentation"), ("annotations", 0, "image_id"),
              ("annotations", 0, "area"), ("annotations", 0, "category_id"), ("categories", 0, "name"),
              ("categories", 0), ("annotations", 0), ("images", 1), ("annotations",), ("categories",), ("images",)]


def mutate(data: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def coco_mutation():
    return st.one_of(
        st.tuples(st.sampled_from(COCO_PATHS), json_value).map(lambda pv: mutate(coco(), *pv)),
        geometry.map(with_segmentation),
        geometry.map(lambda g: coco(workbench={"reviewed": True, "verdict": "NG", "reviewed_mask": g})),
    )


def check_coco(dataset, folder: Path, data) -> None:
    path = folder / "labels.json"
    path.write_text(json.dumps(data))
    try:
        items, _ = read_coco_labels(path, dataset)
    except LabelError as exc:
        assert str(path) in str(exc)
        return
    for item in items:
        assert item.mask is None or (item.mask.dtype == bool and item.mask.ndim == 2)


@PROPERTY
@given(data=coco_mutation())
def test_any_coco_mutation_gives_labels_or_a_label_error(dataset, tmp_path, data):
    check_coco(dataset, tmp_path, data)


@PROPERTY
@given(mask=st.integers(0, 2**32 - 1).flatmap(
    lambda seed: st.just(np.random.default_rng(seed).random((st_h := 7 + seed % 13, 3 + seed % 17)) < 0.3)))
def test_compressed_rle_decodes_exactly_as_pycocotools_encodes(mask):
    mask_api = pytest.importorskip("pycocotools.mask")
    rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
    seg = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
    assert np.array_equal(decode_segmentation(seg, *mask.shape), mask)


# ----------------------------------------------------------------------------- workspace


def corrupt_pages(db: Path) -> None:
    """Overwrite every page but the first (the header and schema) with garbage."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    rng = np.random.default_rng(0)
    data[page:] = rng.integers(0, 256, len(data) - page, dtype=np.uint8).tobytes()
    db.write_bytes(bytes(data))


def test_a_workspace_with_corrupt_pages_raises_workspace_error_on_reads_and_writes(tmp_path, dataset):
    with Workspace.create(tmp_path / "ws") as ws:
        entry = ws.add_dataset("parts", dataset.root, "folder")
        for i in range(200):
            ws.set_label(entry.id, dataset.root / "good" / f"g{i % 5}.png", "NG", f"class{i}", note="x" * 200)
            ws.set_setting(f"k{i}", "v" * 100)
    db = tmp_path / "ws" / DB_FILE
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    corrupt_pages(db)
    try:
        ws = Workspace.open(tmp_path / "ws")
    except WorkspaceError as exc:  # damage found while opening: also the documented error
        assert "damaged" in str(exc)
        return
    with ws:
        for read in (ws.datasets, lambda: ws.labels(entry.id), lambda: ws.get_setting("k3"), ws.models):
            with pytest.raises(WorkspaceError, match="is damaged .*restore"):
                read()
        for write in (lambda: ws.set_setting("k1", 2), lambda: ws.set_label(entry.id, "good/g1.png", "OK")):
            with pytest.raises(WorkspaceError, match="is damaged .*restore"):
                write()


@pytest.mark.slow
def test_fuzz_1000_coco_files_end_only_in_label_errors(dataset, tmp_path):
    count = 0

    @settings(max_examples=1000, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(data=coco_mutation())
    def fuzz(data):
        nonlocal count
        count += 1
        check_coco(dataset, tmp_path, data)

    fuzz()
    assert count >= 1000


@pytest.mark.parametrize("entry, message", [
    ({"key": 5}, "'images.0.key'"),
    ({"key": "scratch/s0.png", "reviewed": "yes"}, "'images.0.reviewed'"),
    ({"key": "scratch/s0.png", "reviewed_mask": "../../outside_mask.png"}, "must name a file inside"),
])
def test_a_damaged_mvtec_label_manifest_raises_label_error(dataset, tmp_path, entry, message):
    from workbench.core.labels import read_mvtec_labels
    from workbench.core.labels.exchange import FORMAT, MANIFEST

    folder = tmp_path / "export"
    folder.mkdir()
    cv2.imwrite(str(tmp_path / "outside_mask.png"), np.full((H, W), 255, np.uint8))
    (folder / MANIFEST).write_text(json.dumps({"format": FORMAT, "version": 1, "images": [entry]}))
    with pytest.raises(LabelError, match=message):
        read_mvtec_labels(folder, dataset)
