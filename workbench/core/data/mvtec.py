"""MVTec AD style folders (also MVTec LOCO / AD 2 and anything converted to this layout).

::

    bottle/                       <- category folder (or a root holding several of these)
      train/good/*.png            -> split "train", label "good"
      validation/good/*.png       -> split "val"   (also "val/"; optional)
      test/good/*.png             -> split "test", label "good"
      test/<defect>/*.png         -> split "test", label "<defect>"
      ground_truth/<defect>/<stem>_mask.png   (or <stem>.png; optional)

MVTec AD 2's ``test_public/`` (with ``test_public/ground_truth/``) is used when ``test/`` is
absent. Masks are optional: defect images without one are listed in the report, not refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from .io import existing_dir, list_images, list_subdirs, pick_category, validate_records
from .records import GOOD, Dataset, DatasetError, ImageRecord, ImportReport, require_training_images

TEST_DIRS = ("test", "test_public")
VAL_DIRS = ("validation", "val")
GT_DIR = "ground_truth"

MaskIndex = dict[tuple[str, str], Path]  # (label, file stem) -> mask file


def is_mvtec_category(folder: Path) -> bool:
    """A category folder has ``train/`` or a test folder directly inside."""
    return any((folder / d).is_dir() for d in ("train", *TEST_DIRS))


def mvtec_categories(root: str | os.PathLike[str]) -> list[str]:
    """Names of the category folders under an MVTec root (empty if ``root`` is one)."""
    root = Path(root)
    if is_mvtec_category(root):
        return []
    return [d.name for d in list_subdirs(root) if is_mvtec_category(d)]


def resolve_mvtec_category(root: Path, category: str | None) -> Path:
    """The category folder for ``root`` + ``category``; explains the choices if ambiguous."""
    if is_mvtec_category(root):
        if category is None or category == root.name:
            return root
        if not is_mvtec_category(root / category):
            raise DatasetError(
                f"'{root}' is itself one category ('{root.name}'), so category '{category}' cannot be "
                "chosen inside it. Choose its parent folder to pick another category."
            )
        return root / category
    available = mvtec_categories(root)
    if not available:
        raise DatasetError(
            f"'{root}' is not an MVTec-style folder: expected train/good/ and test/<label>/ inside "
            "it, or category folders that contain them. Pick the folder that holds train/ and test/."
        )
    return root / pick_category(root, category, available)


def load_mvtec(root: str | os.PathLike[str], category: str | None = None, *,
               check_images: bool = True) -> Dataset:
    """Import one MVTec-style category. ``root`` is the category folder or the dataset root.

    With a dataset root, ``category`` picks the folder (it may be omitted when there is only
    one). Unreadable files are skipped and listed in ``dataset.report.unreadable``.
    """
    root = existing_dir(root)
    cat_dir = resolve_mvtec_category(root, category)
    report = ImportReport(layout="mvtec", root=cat_dir)
    test_dir = next((cat_dir / d for d in TEST_DIRS if (cat_dir / d).is_dir()), cat_dir / "test")
    masks = _index_masks([cat_dir / GT_DIR, test_dir / GT_DIR], report)

    candidates = _train_records(cat_dir / "train", report)
    for val_name in VAL_DIRS:
        candidates += _labelled_records(cat_dir / val_name, "val", masks, report, loose_label=GOOD)
    candidates += _labelled_records(test_dir, "test", masks, report, loose_label=None)

    used = {r.mask_path for r in candidates if r.mask_path is not None}
    report.orphan_masks = sorted(p for (label, _), p in masks.items() if p not in used and label != GOOD)
    records = validate_records(candidates, report, check_images)
    if not any(r.split == "test" for r in records):
        report.warnings.append(f"No test images in '{test_dir}': you can train but not evaluate.")
    dataset = Dataset(name=cat_dir.name, root=cat_dir, layout="mvtec", records=records, report=report)
    return require_training_images(dataset, f"put them in '{cat_dir / 'train' / GOOD}'")


def _train_records(train_dir: Path, report: ImportReport) -> list[ImageRecord]:
    """train/good only: unsupervised training never sees defects, so other folders are skipped."""
    records: list[ImageRecord] = []
    loose = list_images(train_dir, report=report)
    if loose:
        report.warnings.append(f"{len(loose)} image(s) directly in '{train_dir}' were taken as good; "
                               f"move them to '{train_dir / GOOD}' to silence this warning.")
        records += [ImageRecord(p, "train", GOOD) for p in loose]
    for sub in list_subdirs(train_dir):
        if sub.name.lower() != GOOD:
            report.warnings.append(f"Skipped '{sub}': only train/good is used for training; "
                                   f"put defect images in test/{sub.name}/.")
            continue
        records += [ImageRecord(p, "train", GOOD) for p in list_images(sub, report=report)]
    return records


def _labelled_records(split_dir: Path, split: str, masks: MaskIndex, report: ImportReport,
                      loose_label: str | None) -> list[ImageRecord]:
    """``split_dir/<label>/*`` -> records; images directly inside get ``loose_label`` or are skipped."""
    records: list[ImageRecord] = []
    loose = list_images(split_dir, report=report)
    if loose and loose_label is None:
        report.warnings.append(f"Skipped {len(loose)} image(s) directly in '{split_dir}': their label is "
                               f"unknown; put them in {split_dir.name}/good/ or {split_dir.name}/<defect>/.")
    elif loose:
        records += [ImageRecord(p, split, loose_label) for p in loose]
    for sub in list_subdirs(split_dir):
        if sub.name == GT_DIR:
            continue
        label = GOOD if sub.name.lower() == GOOD else sub.name
        for p in list_images(sub, report=report):
            mask = None if label == GOOD else _find_mask(masks, sub.name, p.stem)
            records.append(ImageRecord(p, split, label, mask))
    return records


def _index_masks(gt_dirs: list[Path], report: ImportReport) -> MaskIndex:
    """All mask files under ``ground_truth/<label>/``, keyed by (label, stem); first dir wins."""
    index: MaskIndex = {}
    for gt in gt_dirs:
        for sub in list_subdirs(gt):
            for p in list_images(sub, report=report):
                index.setdefault((sub.name, p.stem), p)
    return index


def _find_mask(masks: MaskIndex, label: str, stem: str) -> Path | None:
    return masks.get((label, f"{stem}_mask")) or masks.get((label, stem))
