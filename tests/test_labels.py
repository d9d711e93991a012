"""Reviewed labels core: mask storage (atomic), reviewed ground truth, mask editing and the
MVTec / COCO export -> import round trips."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from workbench.core import files
from workbench.core.data import load_dataset, read_mask
from workbench.core.evaluation import evaluate_predictions
from workbench.core.labels import (
    LabelError, dataset_labels_dir, delete_mask, evaluate_reviewed, export_coco, export_mvtec, fill_from_map,
    fill_polygon, label_key, load_classes, load_mask, mask_contours, mask_file, pack_mask, paint_stroke,
    read_coco_labels, read_mvtec_labels, reviewed_records, save_classes, save_mask, store_labels, unpack_mask,
)
from workbench.core.labels import exchange
from workbench.core.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fabric(sample_root):
    return load_dataset(sample_root, category="fabric")


@pytest.fixture
def ws(tmp_path, fabric):
    workspace = Workspace.create(tmp_path / "ws")
    entry = workspace.add_dataset("", fabric.root, "mvtec", "fabric")
    yield workspace, entry.id
    workspace.close()


def _square(shape, x0, y0, x1, y1):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def _some_labels(workspace, dataset_id, dataset):
    """A mixed review: flips both ways, a class change, a note, drawn and emptied masks."""
    folder = dataset_labels_dir(workspace.labels_dir, dataset_id)
    good = [r for r in dataset.test if r.is_good]
    bad = [r for r in dataset.test if r.is_anomalous]
    shape = read_mask(bad[0].mask_path).shape
    workspace.set_label(dataset_id, good[0].path, "NG", "stain", "dark spot near the edge")
    save_mask(folder, workspace.label_key(dataset_id, good[0].path), _square(shape, 10, 20, 40, 30))
    workspace.set_label(dataset_id, bad[0].path, "OK", None, "not a defect: lint")
    workspace.set_label(dataset_id, bad[1].path, "NG", "scratch")
    save_mask(folder, workspace.label_key(dataset_id, bad[1].path), _square(shape, 100, 100, 130, 110))
    workspace.set_label(dataset_id, bad[2].path, None, None, "check again")
    save_mask(folder, workspace.label_key(dataset_id, bad[3].path), np.zeros(shape, bool))  # emptied
    workspace.set_label(dataset_id, good[1].path, "OK")
    save_mask(folder, workspace.label_key(dataset_id, good[2].path), _square(shape, 0, 0, 5, 5))  # mask on OK
    return folder


def _state(workspace, dataset_id, dataset):
    folder = dataset_labels_dir(workspace.labels_dir, dataset_id)
    labels = {k: {f: v[f] for f in ("verdict", "defect_class", "note")} for k, v in workspace.labels(dataset_id).items()}
    masks = {}
    for r in dataset.records:
        key = label_key(dataset.root, r.path)
        m = load_mask(folder, key)
        if m is not None:
            masks[key] = m
    return labels, masks


# ----------------------------------------------------------------------------- storage
def test_mask_file_layout_and_round_trip(ws, fabric):
    workspace, did = ws
    record = fabric.test[0]
    key = workspace.label_key(did, record.path)
    assert key == label_key(fabric.root, record.path) == "test/good/000.png"
    folder = dataset_labels_dir(workspace.labels_dir, did)
    mask = _square((256, 256), 3, 4, 50, 60)
    path = save_mask(folder, key, mask)
    assert path == workspace.labels_dir / str(did) / "test/good/000.png.png"
    assert np.array_equal(load_mask(folder, key), mask)
    assert np.array_equal(read_mask(path), mask)  # the core's mask reader agrees
    assert load_mask(folder, "test/good/001.png") is None
    assert delete_mask(folder, key) and load_mask(folder, key) is None
    # keys of images outside the root never escape the labels folder
    assert mask_file(folder, "/abs/../x/img.png").is_relative_to(folder)
    assert mask_file(folder, "C:\\data\\img.png").is_relative_to(folder)


def test_failed_write_midway_keeps_the_previous_mask(ws, monkeypatch):
    workspace, did = ws
    folder = dataset_labels_dir(workspace.labels_dir, did)
    before = _square((64, 64), 5, 5, 20, 20)
    path = save_mask(folder, "a/b.png", before)

    real_fdopen = os.fdopen

    class Torn:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            self.fh.write(data[: len(data) // 2])  # half the bytes reach the temp file...
            raise OSError(28, "No space left on device")  # ...then the disk is full

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: Torn(real_fdopen(fd, mode)))
    with pytest.raises(LabelError, match="previous mask is unchanged"):
        save_mask(folder, "a/b.png", np.ones((64, 64), bool))
    monkeypatch.undo()
    assert np.array_equal(load_mask(folder, "a/b.png"), before)
    assert [p.name for p in path.parent.iterdir()] == ["b.png.png"]  # no temp file left behind


def test_killed_process_keeps_the_previous_mask(tmp_path):
    """A process killed between writing the temp file and the rename loses only its edit."""
    folder = tmp_path / "labels" / "1"
    before = _square((64, 64), 1, 1, 9, 9)
    save_mask(folder, "k.png", before)
    ready = tmp_path / "ready"
    script = textwrap.dedent(f"""
        import os, sys, time, numpy as np
        sys.path.insert(0, {str(REPO)!r})
        from workbench.core import files
        from workbench.core.labels import save_mask
        def stuck(src, dst):
            open({str(ready)!r}, "w").close()
            time.sleep(60)  # killed here: the new mask is fully in the temp file, not renamed
        files.os.replace = stuck
        save_mask({str(folder)!r}, "k.png", np.ones((64, 64), bool))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(600):
            if ready.exists() or proc.poll() is not None:
                break
            import time
            time.sleep(0.05)
        assert ready.exists(), "the writer never reached the rename"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert np.array_equal(load_mask(folder, "k.png"), before)


def test_classes_are_stored_per_dataset(ws, fabric):
    workspace, did = ws
    assert load_classes(workspace, did, fabric.defect_types) == ["hole", "scratch", "stain"]
    assert save_classes(workspace, did, [" scratch", "dent", "good", "dent", ""]) == ["scratch", "dent"]
    assert load_classes(workspace, did, fabric.defect_types) == ["scratch", "dent"]


# ----------------------------------------------------------------------------- reviewed ground truth
def test_reviewed_records_swap_in_verdicts_classes_and_masks(ws, fabric):
    workspace, did = ws
    folder = _some_labels(workspace, did, fabric)
    good = [r for r in fabric.test if r.is_good]
    bad = [r for r in fabric.test if r.is_anomalous]
    rev = reviewed_records(fabric, workspace.labels(did), folder)
    by_path = {r.path: r for r in rev.records}
    assert by_path[good[0].path].label == "stain"
    assert by_path[good[0].path].mask_path == mask_file(folder, "test/good/000.png")
    assert by_path[bad[0].path].is_good and by_path[bad[0].path].mask_path is None
    assert by_path[bad[1].path].label == "scratch" and by_path[bad[1].path].mask_path.parent.is_relative_to(folder)
    assert by_path[bad[2].path] == bad[2]  # a note only: the folder's ground truth stands
    assert by_path[bad[3].path].mask_path is None  # emptied mask: no pixel ground truth
    assert by_path[good[2].path].is_good  # a mask alone does not make an OK image NG
    assert rev.n_reviewed == 7 and rev.n_original == len(fabric.records) - 7 and rev.n_changed == 2
    assert "7 reviewed" in rev.summary()
    # untouched records are the very same objects, and the dataset is unchanged
    assert by_path[good[5].path] is good[5]
    assert fabric.test[0] is good[0] and good[0].is_good


def test_evaluation_uses_reviewed_ground_truth(ws, fabric):
    workspace, did = ws
    records = fabric.test
    rng = np.random.default_rng(0)
    scores = np.array([2.0 if r.is_anomalous else 1.0 for r in records], np.float32)
    maps = rng.random((len(records), 16, 16)).astype(np.float32)
    original = evaluate_predictions(records, scores, maps)
    assert original.image_auroc == 1.0
    bad = [r for r in records if r.is_anomalous]
    workspace.set_label(did, bad[0].path, "OK")  # the engineer says this high score is a false alarm
    result, rev = evaluate_reviewed(original, workspace.labels(did), dataset_labels_dir(workspace.labels_dir, did),
                                    fabric.root)
    assert rev.n_changed == 1 and result.n_defect == original.n_defect - 1
    assert result.image_auroc < 1.0


# ----------------------------------------------------------------------------- editing
def test_brush_eraser_polygon_and_fill_from_map():
    mask = np.zeros((40, 60), bool)
    paint_stroke(mask, [(10, 10), (30, 10)], radius=2)
    assert mask[10, 10:31].all() and mask[8:13, 20].all()
    assert not mask[13, 20] and not mask[10, 33] and not mask[10, 7]
    paint_stroke(mask, [(20, 10)], radius=1, value=False)  # eraser
    assert not mask[9:12, 20].any() and not mask[10, 19:22].any() and mask[9, 19]  # a radius-1 disc is a plus
    assert mask[10, 18] and mask[10, 22]
    fill_polygon(mask, [(40, 20), (55, 20), (55, 35), (40, 35)])
    assert mask[20:36, 40:56].all() and not mask[19, 45] and not mask[25, 56]
    amap = np.zeros((10, 15), np.float32)  # model map at a coarser resolution than the mask
    amap[1:3, 1:3] = 5.0
    amap[7:9, 11:13] = 5.0
    seeded = fill_from_map(np.zeros((40, 60), bool), amap, 1.0, seed=(8, 8))
    assert seeded[8, 8] and not seeded[32, 48]  # only the blob under the seed
    both = fill_from_map(np.zeros((40, 60), bool), amap, 1.0)
    assert both[8, 8] and both[32, 48]
    assert not fill_from_map(np.zeros((40, 60), bool), amap, 1.0, seed=(30, 5)).any()
    contours = mask_contours(_square((20, 20), 5, 5, 10, 10))
    assert len(contours) == 1 and contours[0].min() == 5.5 and contours[0].max() == 9.5
    packed = pack_mask(mask)
    assert len(packed[1]) == (40 * 60 + 7) // 8 and np.array_equal(unpack_mask(packed), mask)


# ----------------------------------------------------------------------------- exchange
@pytest.mark.parametrize("fmt", ["mvtec", "coco"])
def test_export_import_round_trip_gives_identical_labels_and_masks(tmp_path, ws, fabric, fmt):
    if fmt == "coco":
        pytest.importorskip("pycocotools")
    workspace, did = ws
    folder = _some_labels(workspace, did, fabric)
    expected = _state(workspace, did, fabric)
    assert len(expected[0]) == 5 and len(expected[1]) == 4
    out = tmp_path / ("export" if fmt == "mvtec" else "labels.json")
    if fmt == "mvtec":
        report = export_mvtec(fabric, workspace.labels(did), folder, out)
        assert (out / "test/stain/000.png").is_file()  # the good image reviewed NG/stain
        assert (out / "test/good/000.png").is_file() and (out / "train/good/000.png").is_file()
        # the hole image reviewed as a scratch went to test/scratch with its drawn mask
        assert np.array_equal(read_mask(out / "ground_truth/scratch/001_mask.png"), expected[1]["test/hole/001.png"])
        assert (out / "ground_truth/stain/000_mask.png").is_file()
    else:
        report = export_coco(fabric, workspace.labels(did), folder, out)
        assert report.encoding == "rle"
    assert report.images == len(fabric.records) and report.labels == 7

    other = Workspace.create(tmp_path / "other")
    try:
        did2 = other.add_dataset("", fabric.root, "mvtec", "fabric").id
        reader = read_mvtec_labels if fmt == "mvtec" else read_coco_labels
        items, imported = reader(out, fabric)
        assert imported.skipped == []
        store_labels(other, did2, items)
        labels, masks = _state(other, did2, fabric)
    finally:
        other.close()
    assert labels == expected[0]
    assert masks.keys() == expected[1].keys()
    for key, mask in masks.items():
        assert np.array_equal(mask, expected[1][key]), key


def test_mvtec_export_is_a_readable_mvtec_dataset(tmp_path, ws, fabric):
    workspace, did = ws
    folder = _some_labels(workspace, did, fabric)
    out = tmp_path / "fabric_reviewed"
    export_mvtec(fabric, workspace.labels(did), folder, out)
    again = load_dataset(out, layout="mvtec")
    rev = reviewed_records(fabric, workspace.labels(did), folder)
    assert sorted((r.split, r.label) for r in again.records) == sorted((r.split, r.label) for r in rev.records)
    assert sum(r.mask_path is not None for r in again.records) == sum(r.mask_path is not None for r in rev.records)
    with pytest.raises(LabelError, match="not an empty folder"):
        export_mvtec(fabric, workspace.labels(did), folder, out)


def test_import_of_a_foreign_mvtec_folder_keeps_only_differences(tmp_path, fabric, sample_root):
    items, report = read_mvtec_labels(sample_root / "fabric", fabric)
    assert items == [] and report.images == len(fabric.records) and report.skipped == []
    # a copy where one good image was moved into a defect folder, with a mask
    import shutil

    copy = tmp_path / "fabric"
    shutil.copytree(sample_root / "fabric", copy)
    (copy / "test/hole/100.png").write_bytes((copy / "test/good/003.png").read_bytes())
    (copy / "test/good/003.png").unlink()
    items, report = read_mvtec_labels(copy, fabric)
    assert report.skipped == ["test/hole/100.png"]  # unknown name: cannot be matched to the dataset
    assert [(i.key, i.verdict) for i in items] == []


def test_coco_polygon_fallback_without_pycocotools(tmp_path, ws, fabric, monkeypatch):
    workspace, did = ws
    folder = _some_labels(workspace, did, fabric)
    monkeypatch.setattr(exchange, "_coco_mask", None)
    monkeypatch.setattr(exchange, "COCO_MASK_ENCODING", "polygon")
    out = tmp_path / "labels.json"
    report = export_coco(fabric, workspace.labels(did), folder, out)
    assert report.encoding == "polygon"
    items, _ = read_coco_labels(out, fabric)
    by_key = {i.key: i for i in items}
    drawn = by_key["test/hole/001.png"].mask
    expected = load_mask(folder, "test/hole/001.png")
    iou = (drawn & expected).sum() / (drawn | expected).sum()
    assert iou > 0.9
    assert by_key["test/good/000.png"].verdict == "NG" and by_key["test/good/000.png"].defect_class == "stain"
