"""Recognise a dataset folder's layout and load it with the right importer.

The GUI and CLI only call :func:`load_dataset`; users should not have to know the name of
their layout, and when nothing matches the error shows what the three layouts look like.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .folder import find_good_dir, folder_categories, load_folder
from .io import existing_dir, list_subdirs
from .mvtec import is_mvtec_category, load_mvtec, mvtec_categories
from .records import Dataset, DatasetError
from .visa import CSV_DIR, is_visa_category, load_visa, visa_categories

LAYOUTS = ("mvtec", "visa", "folder")

EXPECTED_LAYOUTS = """\
Expected one of these layouts:
  MVTec:   <category>/train/good/*.png, <category>/test/good/, <category>/test/<defect>/,
           optional <category>/ground_truth/<defect>/<name>_mask.png
  VisA:    split_csv/1cls.csv with <category>/Data/Images/{Normal,Anomaly}/ and
           <category>/Data/Masks/Anomaly/ (the CSV is optional)
  Folder:  good/*.png (good images), <defect>/*.png (one folder per defect type),
           optional masks/<name>.png or masks/<defect>/<name>.png"""

PathLike = str | os.PathLike[str]


def detect_layout(root: PathLike) -> str:
    """'mvtec', 'visa' or 'folder'; DatasetError explaining the layouts if none matches."""
    path = existing_dir(root)
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise DatasetError(f"Dataset folder '{path}' is empty. Copy your images into it first.\n"
                           + EXPECTED_LAYOUTS)
    if find_good_dir(path) is not None and not (path / "train").is_dir():
        return "folder"  # checked first so a defect type called "test" is not taken for MVTec
    if is_mvtec_category(path) or mvtec_categories(path):
        return "mvtec"
    if (path / CSV_DIR).is_dir() or is_visa_category(path) or visa_categories(path):
        return "visa"
    if folder_categories(path):
        return "folder"
    found = ", ".join(d.name + "/" for d in list_subdirs(path)[:8]) or "no sub-folders"
    raise DatasetError(f"Cannot tell how '{path}' is organised (found: {found}).\n" + EXPECTED_LAYOUTS)


def list_categories(root: PathLike, layout: str = "auto") -> list[str]:
    """Category names under a multi-category root; empty when ``root`` is a single dataset."""
    layout = detect_layout(root) if layout == "auto" else _check_layout(layout)
    path = Path(root).expanduser().absolute()
    if layout == "mvtec":
        return mvtec_categories(path)
    if layout == "visa":
        return visa_categories(path)
    return folder_categories(path)


def load_dataset(root: PathLike, category: str | None = None, layout: str = "auto",
                 **kw: Any) -> Dataset:
    """Detect the layout (unless given) and import; ``kw`` goes to the layout's loader.

    Raises DatasetError (a ValueError) with a message meant for the end user.
    """
    layout = detect_layout(root) if layout == "auto" else _check_layout(layout)
    if layout == "mvtec":
        return load_mvtec(root, category, **kw)
    if layout == "visa":
        return load_visa(root, category, **kw)
    return load_folder(root, category=category, **kw)


def _check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise DatasetError(f"Unknown layout '{layout}'; use 'auto' or one of {', '.join(LAYOUTS)}.")
    return layout
