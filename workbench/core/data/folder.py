"""Plain folders: the layout an engineer makes by hand.

Either name the folders explicitly (``good_dir``, ``defect_dirs``, ``mask_dir``) or use the
convention::

    my_part/
      good/            (also "ok" or "normal"; sub-folders allowed) -> train + held-out test
      scratch/*.png    every other folder is a defect type         -> test, label "scratch"
      dent/*.png
      masks/           (or "ground_truth"; optional)
        scratch/007.png  or  007_mask.png  or flat masks/007.png

A defect folder given in ``defect_dirs`` that contains sub-folders uses each sub-folder as a
defect type (a sub-folder named ``good`` holds good *test* images); images directly inside
it get the folder's own name. Good images are split into train/test by ``test_fraction``.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from .io import existing_dir, list_images, list_subdirs, pick_category, validate_records
from .records import GOOD, Dataset, DatasetError, ImageRecord, ImportReport, require_training_images

GOOD_NAMES = ("good", "ok", "normal")
MASK_NAMES = ("masks", "mask", "ground_truth", "gt")

PathLike = str | os.PathLike[str]


def holdout_split(paths: Sequence[Path], fraction: float, seed: int = 0,
                  base: Path | None = None) -> tuple[list[Path], list[Path]]:
    """Deterministically split ``paths`` into (train, test) with ``fraction`` in test.

    Files are ranked by a hash of ``seed`` and their path relative to ``base``, so the split
    is the same on every machine and wherever the folder is moved, and adding new images
    rarely moves an old test image into training. At least one image stays in train.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {fraction}")
    n_test = min(int(fraction * len(paths) + 0.5), max(len(paths) - 1, 0))

    def rank(p: Path) -> str:
        key = p.relative_to(base).as_posix() if base is not None else p.name
        return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()

    test = set(sorted(paths, key=rank)[:n_test])
    return [p for p in paths if p not in test], [p for p in paths if p in test]


def find_good_dir(root: Path) -> Path | None:
    """``root/good`` (or ok/normal, any case) if present."""
    by_name = {d.name.lower(): d for d in list_subdirs(root)}
    return next((by_name[n] for n in GOOD_NAMES if n in by_name), None)


def folder_categories(root: PathLike) -> list[str]:
    """Sub-folders that each follow the convention (empty if ``root`` itself does)."""
    root = Path(root)
    if find_good_dir(root) is not None:
        return []
    return [d.name for d in list_subdirs(root) if find_good_dir(d) is not None]


def load_folder(root: PathLike | None = None, good_dir: PathLike | None = None,
                defect_dirs: Sequence[PathLike] | None = None, mask_dir: PathLike | None = None,
                test_fraction: float = 0.2, seed: int = 0, *, category: str | None = None,
                check_images: bool = True) -> Dataset:
    """Import plain folders. Relative ``*_dir`` paths are taken relative to ``root``.

    With only ``root``, the convention in the module docstring is used. ``category`` picks a
    sub-folder of ``root`` when ``root`` holds several such parts.
    """
    if root is None and good_dir is None:
        raise DatasetError("Give the dataset folder (root) or the folder of good images (good_dir).")
    base = existing_dir(root) if root is not None else None
    if base is not None and good_dir is None and find_good_dir(base) is None:
        base = base / pick_category(base, category, folder_categories(base))
    good = _good_dir(base, good_dir)
    report = ImportReport(layout="folder", root=base or good)
    masks_at = _mask_dir(base, mask_dir)
    defects = _defect_dirs(base, good, masks_at, defect_dirs, report)

    train, held_out = holdout_split(list_images(good, recursive=True, report=report),
                                    test_fraction, seed, base=good)
    candidates = [ImageRecord(p, "train", GOOD) for p in train]
    candidates += [ImageRecord(p, "test", GOOD) for p in held_out]
    candidates += _attach_masks(_defect_records(defects, report), masks_at, report)

    records = validate_records(candidates, report, check_images)
    _warn_unbalanced(records, report)
    name = (base or good.parent).name
    dataset = Dataset(name=name, root=report.root, layout="folder", records=records, report=report)
    return require_training_images(dataset, f"put good images in '{good}'")


def _resolve(base: Path | None, p: PathLike, what: str) -> Path:
    path = Path(p).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.is_dir():
        raise DatasetError(f"The {what} '{path.absolute()}' does not exist or is not a folder.")
    return path.absolute()


def _good_dir(base: Path | None, good_dir: PathLike | None) -> Path:
    if good_dir is not None:
        return _resolve(base, good_dir, "good-image folder")
    assert base is not None
    found = find_good_dir(base)
    if found is None:
        raise DatasetError(
            f"No folder of good images in '{base}': expected '{base / GOOD}' (or ok/, normal/) next "
            "to one folder per defect type. Create it, or choose the good folder explicitly."
        )
    return found


def _mask_dir(base: Path | None, mask_dir: PathLike | None) -> Path | None:
    if mask_dir is not None:
        return _resolve(base, mask_dir, "mask folder")
    if base is None:
        return None
    by_name = {d.name.lower(): d for d in list_subdirs(base)}
    return next((by_name[n] for n in MASK_NAMES if n in by_name), None)


def _defect_dirs(base: Path | None, good: Path, masks_at: Path | None,
                 defect_dirs: Sequence[PathLike] | None, report: ImportReport) -> list[Path]:
    """Explicit defect folders, or (convention) every other sub-folder of root."""
    if defect_dirs is not None:
        return [_resolve(base, d, "defect folder") for d in defect_dirs]
    if base is None or good.parent != base:
        report.warnings.append("No defect folders given: only good images were imported, so "
                               "evaluation will have no defective examples.")
        return []
    skip = {good, masks_at}
    return [d for d in list_subdirs(base) if d not in skip and d.name.lower() not in MASK_NAMES]


def _defect_records(defects: list[Path], report: ImportReport) -> list[ImageRecord]:
    records: list[ImageRecord] = []
    for folder in defects:
        label = GOOD if folder.name.lower() in GOOD_NAMES else folder.name
        records += [ImageRecord(p, "test", label) for p in list_images(folder, report=report)]
        for sub in list_subdirs(folder):
            sub_label = GOOD if sub.name.lower() in GOOD_NAMES else sub.name
            records += [ImageRecord(p, "test", sub_label)
                        for p in list_images(sub, recursive=True, report=report)]
    return records


def _attach_masks(records: list[ImageRecord], masks_at: Path | None,
                  report: ImportReport) -> list[ImageRecord]:
    """Match masks by stem: ``masks/<type>/<stem>[_mask].*`` first, then flat ``masks/<stem>[_mask].*``.

    A flat mask is only used when its stem belongs to one defect image: with equal stems in
    two defect folders it is impossible to know which image it outlines.
    """
    if masks_at is None:
        return records
    flat = {p.stem: p for p in list_images(masks_at, report=report)}
    typed = {(d.name, p.stem): p for d in list_subdirs(masks_at)
             for p in list_images(d, recursive=True, report=report)}
    stems = Counter(r.path.stem for r in records if r.label != GOOD)
    out, ambiguous = [], 0
    for r in records:
        mask = None
        if r.label != GOOD:
            s = r.path.stem
            mask = typed.get((r.label, f"{s}_mask")) or typed.get((r.label, s))
            if mask is None and stems[s] == 1:
                mask = flat.get(f"{s}_mask") or flat.get(s)
            elif mask is None and (f"{s}_mask" in flat or s in flat):
                ambiguous += 1
        out.append(ImageRecord(r.path, r.split, r.label, mask))
    if ambiguous:
        report.warnings.append(f"{ambiguous} defect image(s) share a file name with an image of another "
                               f"defect type, so their flat masks in '{masks_at}' are ambiguous and unused; "
                               "put masks in per-type sub-folders (masks/<type>/).")
    used = {r.mask_path for r in out}
    report.orphan_masks = sorted(p for p in [*flat.values(), *typed.values()] if p not in used)
    return out


def _warn_unbalanced(records: list[ImageRecord], report: ImportReport) -> None:
    has_good_test = any(r.split == "test" and r.is_good for r in records)
    has_bad_test = any(r.split == "test" and r.is_anomalous for r in records)
    if has_bad_test and not has_good_test:
        report.warnings.append("No good test images (test_fraction is 0 or too few good images): "
                               "image-level metrics need both good and defective test images.")
