"""Export reviewed labels as an MVTec AD folder or as COCO JSON, and import them back.

**MVTec layout** (``export_mvtec``): the images are copied into ``train/good`` (good
training images) and ``test/<class>`` (everything else, by reviewed class), with masks in
``ground_truth/<class>/<stem>_mask.png`` (0 / 255, image resolution). Any MVTec tool reads it.
A ``workbench_labels.json`` manifest beside them keeps what the layout cannot hold (notes,
which images were reviewed, where each file came from), so importing our own export gives
back exactly the labels and masks that were exported.

**COCO** (``export_coco``): one JSON file; ``images[].file_name`` is the image path relative
to the dataset root (the images are not copied), one annotation per defective image with
its reviewed class as category and its mask as ``segmentation``. Masks are compressed RLE
(``iscrowd: 1``) written with pycocotools when it is installed; without it they are
polygons traced with ``cv2.findContours`` (outer boundaries only, so holes are lost and
the import is approximate). Each image also carries a ``workbench`` object with the verdict,
class, note and review flags, which other COCO tools ignore.

**Import** (``read_mvtec_labels``, ``read_coco_labels``) returns :class:`ImportedLabel`
items; :func:`store_labels` writes them into a workspace. With our manifest / ``workbench``
objects exactly the reviewed labels are restored. From a foreign folder or file, images are
matched to the dataset by relative path (then by class folder + file name) and only images
whose verdict, class or mask differ from the dataset's own ground truth become labels.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from workbench.core.data import GOOD, Dataset, ImageRecord, read_mask
from workbench.core.data.io import IMAGE_SUFFIXES
from workbench.core.files import atomic_write_json
from workbench.core.formats import CocoFile, LabelManifestJson, RleJson, validate
from workbench.core.labels.reviewed import reviewed_records
from workbench.core.labels.storage import (
    LabelError, dataset_labels_dir, encode_mask, label_key, load_mask, save_mask,
)

MANIFEST = "workbench_labels.json"
FORMAT = "workbench-labels"
FORMAT_VERSION = 1

try:  # optional: exact, compact RLE masks in COCO files
    from pycocotools import mask as _coco_mask
except ImportError:  # pragma: no cover - depends on the installation
    _coco_mask = None

COCO_MASK_ENCODING = "rle" if _coco_mask is not None else "polygon"


@dataclass
class ImportedLabel:
    """One image's label read from an export. ``mask`` None leaves its mask as it is."""

    key: str
    verdict: str | None
    defect_class: str | None = None
    note: str = ""
    mask: np.ndarray | None = None


@dataclass
class ExchangeReport:
    """What an export or import did, for the GUI and the CLI."""

    path: Path
    images: int = 0
    masks: int = 0
    labels: int = 0
    skipped: list[str] = field(default_factory=list)  # files or entries that matched no image
    encoding: str = ""

    def summary(self) -> str:
        text = f"{self.images} image(s), {self.masks} mask(s), {self.labels} label(s): {self.path}"
        if self.encoding:
            text += f" (masks as {self.encoding})"
        if self.skipped:
            text += f"; {len(self.skipped)} skipped"
        return text


# ----------------------------------------------------------------------------- helpers
def _reviewed(dataset: Dataset, labels: Mapping[str, Mapping[str, Any]], labels_dir: Path | None):
    return reviewed_records(dataset, labels, labels_dir)


def _target_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LabelError(f"Cannot export into '{out}': it exists and is not an empty folder. "
                         "Choose a new or empty folder.")


def _finish_dir(staging: Path, out: Path) -> None:
    if out.is_dir():
        out.rmdir()  # empty (checked above)
    os.replace(staging, out)


def _record_mask(record: ImageRecord) -> np.ndarray | None:
    return read_mask(record.mask_path) if record.mask_path is not None else None


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:
        return img.height, img.width


def _label_entry(key: str, label: Mapping[str, Any] | None) -> dict[str, Any]:
    label = label or {}
    return {"key": key, "verdict": label.get("verdict"), "defect_class": label.get("defect_class"),
            "note": label.get("note") or "", "reviewed": bool(label)}


# ----------------------------------------------------------------------------- MVTec
def export_mvtec(dataset: Dataset, labels: Mapping[str, Mapping[str, Any]], labels_dir: str | os.PathLike[str] | None,
                 out: str | os.PathLike[str]) -> ExchangeReport:
    """Write ``dataset`` with reviewed ground truth as an MVTec AD category folder ``out``.

    ``out`` must be new or empty; the folder is built under a temporary name and renamed
    into place, so an interrupted export leaves no half-written folder behind."""
    out = Path(out)
    _target_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    labels_dir = Path(labels_dir) if labels_dir is not None else None
    reviewed = _reviewed(dataset, labels, labels_dir)
    report = ExchangeReport(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        used: set[str] = set()
        entries = []
        for original, record, was_reviewed in zip(dataset.records, reviewed.records, reviewed.reviewed):
            key = label_key(dataset.root, original.path)
            folder = "train/good" if record.split == "train" and record.is_good else f"test/{record.label}"
            rel = _unique(f"{folder}/{original.path.name}", used)
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(original.path, staging / rel)
            report.images += 1
            mask_rel = None
            if record.is_anomalous and record.mask_path is not None:
                mask_rel = _unique(f"ground_truth/{record.label}/{PurePosixPath(rel).stem}_mask.png", used)
                (staging / mask_rel).parent.mkdir(parents=True, exist_ok=True)
                (staging / mask_rel).write_bytes(encode_mask(read_mask(record.mask_path)))
                report.masks += 1
            own_mask = load_mask(labels_dir, key) if labels_dir is not None else None
            review_rel = None
            if own_mask is not None:
                if mask_rel is not None and record.mask_path != original.mask_path:
                    review_rel = mask_rel  # the ground-truth file is the reviewed mask
                else:  # OK image, empty mask...: kept beside the layout so nothing is lost
                    review_rel = _unique(f"workbench_masks/{PurePosixPath(rel).with_suffix('')}_mask.png", used)
                    (staging / review_rel).parent.mkdir(parents=True, exist_ok=True)
                    (staging / review_rel).write_bytes(encode_mask(own_mask))
            entry = _label_entry(key, labels.get(key))
            entry.update(file=rel, mask=mask_rel, reviewed_mask=review_rel, split=original.split,
                         original_label=original.label)
            report.labels += int(was_reviewed)
            entries.append(entry)
        atomic_write_json(staging / MANIFEST, {"format": FORMAT, "version": FORMAT_VERSION,
                                               "dataset": dataset.name, "layout": "mvtec",
                                               "images": entries})
        _finish_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _unique(rel: str, used: set[str]) -> str:
    """``rel`` or ``rel`` with ``_1``, ``_2``... before the suffix, never used twice."""
    candidate, n = rel, 0
    p = PurePosixPath(rel)
    while candidate.lower() in used:
        n += 1
        candidate = str(p.with_name(f"{p.stem}_{n}{p.suffix}"))
    used.add(candidate.lower())
    return candidate


def read_mvtec_labels(folder: str | os.PathLike[str], dataset: Dataset) -> tuple[list[ImportedLabel], ExchangeReport]:
    """Labels of ``dataset``'s images from an MVTec-layout folder (ours or anyone's)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LabelError(f"'{folder}' is not a folder. Choose the category folder that holds "
                         "train/, test/ and ground_truth/.")
    report = ExchangeReport(folder)
    manifest = folder / MANIFEST
    keys = {label_key(dataset.root, r.path): r for r in dataset.records}
    items: list[ImportedLabel] = []
    if manifest.is_file():
        data = _read_json(manifest)
        if data.get("format") != FORMAT:
            raise LabelError(f"{manifest} is not a workbench label manifest.")
        checked = validate(LabelManifestJson, data, manifest, LabelError, "Export the labels again.")
        for entry in (e.model_dump() for e in checked.images):
            key = entry["key"]
            if key not in keys:
                report.skipped.append(str(entry.get("file") or key))
                continue
            report.images += 1
            mask = None
            if entry.get("reviewed_mask"):
                mask_path = folder / entry["reviewed_mask"]
                if folder.resolve() not in mask_path.resolve().parents:
                    raise LabelError(f"{manifest}: 'reviewed_mask' of '{key}' must name a file inside {folder}, "
                                     f"not {entry['reviewed_mask']!r}. Export the labels again.")
                mask = _load_file_mask(mask_path)
                report.masks += 1
            if entry.get("reviewed") or mask is not None:
                items.append(ImportedLabel(key, entry.get("verdict"), entry.get("defect_class"),
                                           entry.get("note") or "", mask))
        report.labels = len(items)
        return items, report
    # A foreign MVTec folder: every image there says OK (good) or NG (defect folder).
    by_rel, by_name = _record_lookup(dataset)
    test_and_train = [p for sub in ("train", "test") for p in sorted((folder / sub).glob("*/*"))
                      if p.suffix.lower() in IMAGE_SUFFIXES]
    if not test_and_train:
        raise LabelError(f"'{folder}' has no images in train/<class>/ or test/<class>/: not an "
                         "MVTec AD category folder.")
    for path in test_and_train:
        rel = path.relative_to(folder).as_posix()
        cls = path.parent.name
        record = by_rel.get(rel) or by_name.get((cls, path.name))
        if record is None:
            report.skipped.append(rel)
            continue
        report.images += 1
        mask = None
        gt = folder / "ground_truth" / cls / f"{path.stem}_mask.png"
        if cls != GOOD and gt.is_file():
            mask = _load_file_mask(gt)
            report.masks += 1
        item = _diff_from_original(record, label_key(dataset.root, record.path),
                                   "OK" if cls == GOOD else "NG", None if cls == GOOD else cls, mask)
        if item is not None:
            items.append(item)
    report.labels = len(items)
    return items, report


def _record_lookup(dataset: Dataset):
    by_rel = {label_key(dataset.root, r.path): r for r in dataset.records}
    by_name: dict[tuple[str, str], ImageRecord] = {}
    for r in dataset.records:
        by_name.setdefault((r.label, r.path.name), r)
    return by_rel, by_name


def _diff_from_original(record: ImageRecord, key: str, verdict: str, cls: str | None,
                        mask: np.ndarray | None) -> ImportedLabel | None:
    """A label only where the imported ground truth differs from the dataset's own."""
    same_verdict = (verdict == "NG") == record.is_anomalous
    same_class = verdict == "OK" or cls == record.label
    same_mask = True
    if mask is not None:
        original = _record_mask(record)
        same_mask = original is not None and original.shape == mask.shape and np.array_equal(original, mask)
    if same_verdict and same_class and same_mask:
        return None
    return ImportedLabel(key, verdict, cls, "", None if same_mask else mask)


def _load_file_mask(path: Path) -> np.ndarray:
    try:
        return read_mask(path)
    except Exception as exc:
        raise LabelError(f"Cannot read the mask {path}: {exc}") from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelError(f"Cannot read {path}: {exc}.") from exc
    if not isinstance(data, dict):
        raise LabelError(f"{path} does not hold a JSON object.")
    return data


# ----------------------------------------------------------------------------- COCO
def encode_segmentation(mask: np.ndarray) -> tuple[Any, int]:
    """(segmentation, iscrowd) for a boolean mask: compressed RLE with pycocotools, else polygons."""
    if _coco_mask is not None:
        rle = _coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}, 1
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polys = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
    return polys, 0


def decode_segmentation(seg: Any, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (compressed or uncompressed RLE, or polygons) as a bool mask.

    Impossible geometry raises :class:`LabelError`: an RLE whose size is not the image's or
    whose runs do not add up to it, a compressed RLE that is not valid, a polygon of odd
    length or with non-numeric or non-finite coordinates. Compressed RLE is decoded here
    rather than by pycocotools, whose decoder returns uninitialised memory for invalid strings.
    """
    if isinstance(seg, dict):
        rle = validate(RleJson, seg, "segmentation", LabelError, "")
        h, w = rle.size
        if (h, w) != (height, width):
            raise LabelError(f"the RLE mask is {h}x{w} (height x width) but its image is {height}x{width}")
        counts = rle.counts if isinstance(rle.counts, list) else _rle_string_counts(rle.counts)
        if sum(counts) != h * w:
            raise LabelError(f"the RLE runs add up to {sum(counts)} pixels, not {h}x{w} = {h * w}")
        flat = np.repeat(np.arange(len(counts)) % 2 == 1, counts)  # runs alternate 0s, 1s, starting with 0s
        return flat.reshape((w, h)).T.copy()  # column-major, as COCO stores it
    if seg is None:
        seg = []
    if not isinstance(seg, list):
        raise LabelError(f"a segmentation must be a list of polygons or an RLE object, not {type(seg).__name__}")
    mask = np.zeros((height, width), np.uint8)
    for poly in seg:
        if not (isinstance(poly, list) and len(poly) % 2 == 0 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e7 for v in poly)):
            raise LabelError("a polygon must be a list of x,y number pairs (an even count of finite coordinates)")
        pts = np.round(np.asarray(poly, np.float64).reshape(-1, 2)).astype(np.int32)
        if len(pts) >= 3:
            cv2.fillPoly(mask, [pts.reshape(-1, 1, 2)], 1)
        elif len(pts):
            mask[np.clip(pts[:, 1], 0, height - 1), np.clip(pts[:, 0], 0, width - 1)] = 1
    return mask.astype(bool)


def _rle_string_counts(text: str) -> list[int]:
    """Run lengths of a COCO compressed RLE string (the format of pycocotools' ``rleFrString``)."""
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(text) or shift > 60:
                raise LabelError("the compressed RLE string is cut off or damaged")
            c = ord(text[pos]) - 48
            if not 0 <= c < 64:
                raise LabelError("the compressed RLE string holds characters that are not RLE data")
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            raise LabelError("the compressed RLE string gives a negative run length")
        counts.append(value)
    return counts


def export_coco(dataset: Dataset, labels: Mapping[str, Mapping[str, Any]], labels_dir: str | os.PathLike[str] | None,
                out: str | os.PathLike[str], classes: list[str] | None = None) -> ExchangeReport:
    """Write ``dataset``'s reviewed ground truth as one COCO JSON file (atomically)."""
    out = Path(out)
    labels_dir = Path(labels_dir) if labels_dir is not None else None
    reviewed = _reviewed(dataset, labels, labels_dir)
    names = list(classes or [])
    for r in reviewed.records:
        if r.is_anomalous and r.label not in names:
            names.append(r.label)
    cat_ids = {name: i + 1 for i, name in enumerate(names)}
    report = ExchangeReport(out, encoding=COCO_MASK_ENCODING)
    images, annotations = [], []
    for i, (original, record, was_reviewed) in enumerate(zip(dataset.records, reviewed.records, reviewed.reviewed), 1):
        key = label_key(dataset.root, original.path)
        h, w = _image_size(original.path)
        own_mask = load_mask(labels_dir, key) if labels_dir is not None else None
        extra = _label_entry(key, labels.get(key))
        extra.update(split=original.split, original_label=original.label)
        if own_mask is not None:  # the reviewed mask itself (also when the image is OK or it is empty)
            extra["reviewed_mask"] = encode_segmentation(own_mask)[0]
        images.append({"id": i, "file_name": key, "width": w, "height": h, "workbench": extra})
        report.images += 1
        report.labels += int(was_reviewed)
        if not record.is_anomalous:
            continue
        ann: dict[str, Any] = {"id": len(annotations) + 1, "image_id": i, "category_id": cat_ids[record.label],
                               "segmentation": [], "area": 0, "bbox": [0, 0, 0, 0], "iscrowd": 0}
        mask = _record_mask(record)
        if mask is not None:
            if mask.shape != (h, w):
                mask = read_mask(record.mask_path, (h, w))
            seg, crowd = encode_segmentation(mask)
            ys, xs = np.nonzero(mask)
            bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)] if len(xs) else [0, 0, 0, 0]
            ann.update(segmentation=seg, iscrowd=crowd, area=int(mask.sum()), bbox=bbox)
            report.masks += 1
        annotations.append(ann)
    data = {
        "info": {"description": f"Reviewed labels of {dataset.name}", "version": "1.0",
                 "workbench": {"format": FORMAT, "version": FORMAT_VERSION, "dataset": dataset.name,
                               "root": str(dataset.root), "mask_encoding": COCO_MASK_ENCODING}},
        "images": images,
        "categories": [{"id": cid, "name": name, "supercategory": "defect"} for name, cid in cat_ids.items()],
        "annotations": annotations,
    }
    atomic_write_json(out, data)
    return report


def read_coco_labels(path: str | os.PathLike[str], dataset: Dataset) -> tuple[list[ImportedLabel], ExchangeReport]:
    """Labels of ``dataset``'s images from a COCO JSON file (ours or anyone's)."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data.get("images"), list):
        raise LabelError(f"{path} is not a COCO file: it has no 'images' list.")
    validate(CocoFile, data, path, LabelError, "Fix the file or export it again from the labelling tool.")
    try:
        return _coco_labels(path, data, dataset)
    except LabelError as exc:
        raise LabelError(f"{path}: {exc}. Fix the file or export it again from the labelling tool.") from exc


def _coco_labels(path: Path, data: dict[str, Any], dataset: Dataset) -> tuple[list[ImportedLabel], ExchangeReport]:
    report = ExchangeReport(path)
    cats = {c.get("id"): str(c.get("name")) for c in data.get("categories", [])}
    anns: dict[Any, list[dict[str, Any]]] = {}
    for ann in data.get("annotations", []):
        anns.setdefault(ann.get("image_id"), []).append(ann)
    by_rel, _ = _record_lookup(dataset)
    by_base: dict[str, list[ImageRecord]] = {}
    for r in dataset.records:
        by_base.setdefault(r.path.name, []).append(r)
    items: list[ImportedLabel] = []
    for image in data["images"]:
        name = str(image.get("file_name", "")).replace("\\", "/")
        record = by_rel.get(name) or by_rel.get(label_key(dataset.root, name))
        if record is None and len(by_base.get(PurePosixPath(name).name, [])) == 1:
            record = by_base[PurePosixPath(name).name][0]
        if record is None:
            report.skipped.append(name)
            continue
        report.images += 1
        key = label_key(dataset.root, record.path)
        h, w = int(image.get("height") or 0), int(image.get("width") or 0)
        if not h or not w:
            h, w = _image_size(record.path)
        own = anns.get(image.get("id"), [])
        mask = None
        segs = [a for a in own if a.get("segmentation")]
        if segs:
            mask = np.zeros((h, w), bool)
            for a in segs:
                mask |= _decode_for(name, "annotation", a["segmentation"], h, w)
            report.masks += 1
        extra = image.get("workbench")
        if isinstance(extra, dict):
            rev = extra.get("reviewed_mask")
            mask = _decode_for(name, "reviewed mask", rev, h, w) if rev is not None else None
            if extra.get("reviewed") or mask is not None:
                items.append(ImportedLabel(key, extra.get("verdict"), extra.get("defect_class"),
                                           extra.get("note") or "", mask))
            continue
        if own:
            biggest = max(own, key=lambda a: float(a.get("area") or 0))
            item = _diff_from_original(record, key, "NG", cats.get(biggest.get("category_id"), "defect"), mask)
        else:
            item = _diff_from_original(record, key, "OK", None, None)
        if item is not None:
            items.append(item)
    report.labels = len(items)
    return items, report


def _decode_for(name: str, what: str, seg: Any, h: int, w: int) -> np.ndarray:
    try:
        return decode_segmentation(seg, h, w)
    except LabelError as exc:
        raise LabelError(f"image '{name}', {what}: {exc}") from exc


# ----------------------------------------------------------------------------- workspace
def store_labels(workspace: Any, dataset_id: int, items: list[ImportedLabel]) -> int:
    """Write imported labels (rows and masks) into ``workspace``; returns how many."""
    folder = dataset_labels_dir(workspace.labels_dir, dataset_id)
    for item in items:
        if item.mask is not None:
            save_mask(folder, item.key, item.mask)
        workspace.set_label(dataset_id, item.key, item.verdict, item.defect_class, item.note)
    return len(items)
