"""VisA (Visual Anomaly) dataset, with its split CSV or from the raw folders.

::

    VisA/
      split_csv/1cls.csv           columns object,split,label,image,mask (paths relative to VisA/)
      candle/Data/Images/Normal/*.JPG
      candle/Data/Images/Anomaly/*.JPG
      candle/Data/Masks/Anomaly/*.png

Labels: ``normal`` -> ``"good"``, ``anomaly`` -> ``"anomaly"``. VisA's 1-class split has no
defect types, so every defect is the single type "anomaly"; custom CSVs may use other label
words, which are kept as the defect type. Anomalies that a (supervised, 2-class) CSV puts in
``train`` go to ``val`` instead, because unsupervised methods must never fit on them.

Without a CSV, the raw folders are split deterministically: every anomaly goes to test and
``test_fraction`` (default 20 %) of the normal images are held out for test, chosen by a
hash of their file names (see :func:`workbench.core.data.folder.holdout_split`).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .folder import holdout_split
from .io import existing_dir, list_images, list_subdirs, pick_category, validate_records
from .records import GOOD, Dataset, DatasetError, ImageRecord, ImportReport, require_training_images

CSV_DIR = "split_csv"
DEFAULT_CSV = "1cls.csv"
ANOMALY = "anomaly"
_GOOD_WORDS = {"normal", "good", "ok"}
_SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
_REQUIRED_COLUMNS = ("object", "split", "label", "image")

PathLike = str | os.PathLike[str]


def is_visa_category(folder: Path) -> bool:
    return (folder / "Data" / "Images").is_dir()


def visa_categories(root: PathLike, split_csv: PathLike | None = None) -> list[str]:
    """Categories named in the split CSV, else category folders with ``Data/Images``."""
    root = Path(root)
    csv_path = _find_csv(root, split_csv)
    if csv_path is not None:
        return sorted({row["object"] for row in _read_csv(csv_path)})
    if is_visa_category(root):
        return []
    return [d.name for d in list_subdirs(root) if is_visa_category(d)]


def load_visa(root: PathLike, category: str | None = None, split_csv: PathLike | None = None, *,
              test_fraction: float = 0.2, seed: int = 0, check_images: bool = True) -> Dataset:
    """Import one VisA category from the dataset root (or the category folder itself).

    ``split_csv`` defaults to ``root/split_csv/1cls.csv`` when it exists; a relative path is
    looked up under ``root`` first. ``test_fraction``/``seed`` only apply without a CSV.
    """
    root = existing_dir(root)
    if is_visa_category(root) and split_csv is None and _find_csv(root.parent, None) is not None:
        root, category = root.parent, category or root.name  # category folder inside a full VisA tree
    csv_path = _find_csv(root, split_csv)
    if csv_path is not None:
        return _load_from_csv(root, csv_path, category, check_images)
    return _load_raw(root, category, test_fraction, seed, check_images)


# ----------------------------------------------------------------------------- CSV


def _find_csv(root: Path, split_csv: PathLike | None) -> Path | None:
    if split_csv is None:
        default = root / CSV_DIR / DEFAULT_CSV
        return default if default.is_file() else None
    given = Path(split_csv).expanduser()
    for candidate in ([root / given] if not given.is_absolute() else []) + [given]:
        if candidate.is_file():
            return candidate.absolute()
    raise DatasetError(f"Split CSV '{split_csv}' not found (looked in '{root}' and the current folder).")


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise DatasetError(f"Split CSV '{path}' lacks column(s) {', '.join(missing)}; expected "
                                   "a header 'object,split,label,image,mask' as in VisA's split_csv/1cls.csv.")
            # extra fields of an over-long row land under the key None: ignored
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise DatasetError(f"Split CSV '{path}' cannot be read ({exc}). Save it as a UTF-8 text file with "
                           "the header 'object,split,label,image,mask'.") from exc


def _load_from_csv(root: Path, csv_path: Path, category: str | None, check_images: bool) -> Dataset:
    rows = _read_csv(csv_path)
    category = pick_category(root, category, sorted({r["object"] for r in rows}))
    report = ImportReport(layout="visa", root=root)
    candidates, listed_masks = [], set()
    missing_files = moved = 0
    for row in (r for r in rows if r["object"] == category):
        rec = _row_record(root, row, csv_path, report)
        if rec is None:
            continue
        if not rec.path.is_file():
            report.unreadable.append((rec.path, f"listed in {csv_path.name} but the file does not exist"))
            continue
        if row.get("mask"):
            mask = (root / row["mask"]).absolute()
            listed_masks.add(mask)
            missing_files += not mask.is_file()
        if rec.split == "train" and rec.is_anomalous:
            rec = ImageRecord(rec.path, "val", rec.label, rec.mask_path)
            moved += 1
        candidates.append(rec)
    if missing_files:
        report.warnings.append(f"{missing_files} mask file(s) listed in {csv_path.name} do not exist.")
    if moved:
        report.warnings.append(f"{moved} anomalous image(s) listed under 'train' were put in 'val': "
                               "unsupervised methods train on good images only.")
    mask_dir = root / category / "Data" / "Masks"
    hint = f"list normal '{category}' images with split 'train' in '{csv_path}'"
    return _finish(root, category, candidates, report, check_images, hint,
                   orphans=[p for p in list_images(mask_dir, recursive=True) if p not in listed_masks])


def _row_record(root: Path, row: dict[str, str], csv_path: Path, report: ImportReport) -> ImageRecord | None:
    split = _SPLITS.get(row["split"].lower())
    if split is None or not row["image"]:
        report.warnings.append(f"Skipped a row of {csv_path.name} with split '{row['split']}' "
                               f"and image '{row['image']}' (split must be train, val or test).")
        return None
    word = row["label"].lower()
    label = GOOD if word in _GOOD_WORDS else (word or ANOMALY)
    mask = (root / row["mask"]).absolute() if row.get("mask") else None
    if mask is not None and (label == GOOD or not mask.is_file()):
        mask = None
    return ImageRecord((root / row["image"]).absolute(), split, label, mask)


# ----------------------------------------------------------------------------- raw folders


def _load_raw(root: Path, category: str | None, test_fraction: float, seed: int,
              check_images: bool) -> Dataset:
    if is_visa_category(root):
        cat_dir = root
    else:
        available = visa_categories(root)
        if not available:
            raise DatasetError(f"'{root}' is not a VisA folder: expected split_csv/1cls.csv or "
                               "<category>/Data/Images/{Normal,Anomaly}/.")
        cat_dir = root / pick_category(root, category, available)
    report = ImportReport(layout="visa", root=cat_dir)
    images = cat_dir / "Data" / "Images"
    normal = list_images(_child(images, "Normal"), recursive=True, report=report)
    anomalies = list_images(_child(images, "Anomaly"), recursive=True, report=report)
    masks = {p.stem: p for p in list_images(_child(cat_dir / "Data" / "Masks", "Anomaly"), recursive=True)}

    train, held_out = holdout_split(normal, test_fraction, seed, base=images)
    candidates = [ImageRecord(p, "train", GOOD) for p in train]
    candidates += [ImageRecord(p, "test", GOOD) for p in held_out]
    candidates += [ImageRecord(p, "test", ANOMALY, masks.get(p.stem) or masks.get(f"{p.stem}_mask"))
                   for p in anomalies]
    report.warnings.append(f"No split CSV: made a deterministic split holding out {len(held_out)} of "
                           f"{len(normal)} normal images ({test_fraction:.0%}) for test, seed {seed}.")
    used = {r.mask_path for r in candidates}
    hint = f"put normal images in '{_child(images, 'Normal')}'"
    return _finish(cat_dir, cat_dir.name, candidates, report, check_images, hint,
                   orphans=[p for p in masks.values() if p not in used])


def _child(folder: Path, name: str) -> Path:
    """``folder/name`` matched case-insensitively (VisA uses Normal/Anomaly)."""
    return next((d for d in list_subdirs(folder) if d.name.lower() == name.lower()), folder / name)


def _finish(cat_dir: Path, name: str, candidates: list[ImageRecord], report: ImportReport,
            check_images: bool, hint: str, orphans: list[Path]) -> Dataset:
    report.orphan_masks = sorted(orphans)
    records = validate_records(candidates, report, check_images)
    dataset = Dataset(name=name, root=cat_dir, layout="visa", records=records, report=report)
    return require_training_images(dataset, hint)
