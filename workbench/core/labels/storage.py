"""Where reviewed labels live on disk, and how masks are written without ever tearing.

Verdicts, defect classes and notes are rows of the workspace's ``labels`` table
(:meth:`Workspace.set_label`). Masks drawn by the user are PNG files next to them::

    <workspace>/labels/<dataset_id>/<label_key>.png

``label_key`` is the image path relative to the dataset root (POSIX separators), exactly the
key :meth:`Workspace.labels` uses, so ``test/scratch/003.png`` has its mask at
``labels/7/test/scratch/003.png.png``. A PNG is 8-bit gray, 255 = defect, 0 = OK.

Every mask is written to a temporary sibling, fsynced and renamed over the old one
(:func:`workbench.core.files.atomic_write_bytes`): a crash or a failing disk leaves the
previous mask complete, never half a file. An existing all-zero mask file means "reviewed:
no defect pixels"; a missing file means "not reviewed, use the dataset's own mask".
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np

from workbench.core.files import atomic_write_bytes

MASK_SUFFIX = ".png"
CLASSES_SETTING = "labels.classes.{dataset_id}"  # workspace setting: defect classes of a dataset


class LabelError(ValueError):
    """A label, mask or label file cannot be read or written; ``str()`` says what to do."""


def label_key(root: str | os.PathLike[str], image_path: str | os.PathLike[str]) -> str:
    """The workspace's key for ``image_path``: relative to ``root`` (POSIX) when inside it.

    Identical to :meth:`Workspace.label_key` without needing the database.
    """
    path = Path(image_path)
    root = Path(os.path.normpath(Path(root)))
    if path.is_absolute():
        path = Path(os.path.normpath(path))
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
        return str(path)
    return Path(os.path.normpath(path)).as_posix()


def dataset_labels_dir(labels_dir: str | os.PathLike[str], dataset_id: int) -> Path:
    """``<workspace>/labels/<dataset_id>``: the folder holding one dataset's masks."""
    return Path(labels_dir) / str(int(dataset_id))


def mask_file(dataset_dir: str | os.PathLike[str], key: str) -> Path:
    """The mask PNG of the image with label ``key`` inside ``dataset_dir``.

    Keys of images outside the dataset root are absolute paths; their drive and leading
    separators are folded into a relative name so the file always stays inside the folder.
    """
    parts = [p for p in re.split(r"[\\/]+", str(key)) if p not in ("", ".", "..")]
    if not parts:
        raise LabelError(f"Cannot store a mask for the empty image key {key!r}.")
    parts[0] = parts[0].replace(":", "_")
    return Path(dataset_dir).joinpath(*parts[:-1], parts[-1] + MASK_SUFFIX)


def encode_mask(mask: np.ndarray) -> bytes:
    """A boolean (H, W) mask as PNG bytes (0 / 255)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise LabelError(f"A mask must be 2-D (height, width), got shape {mask.shape}.")
    ok, buf = cv2.imencode(".png", np.where(mask, 255, 0).astype(np.uint8))
    if not ok:
        raise LabelError("OpenCV could not encode the mask as PNG.")
    return buf.tobytes()


def decode_mask(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise LabelError("The mask file is not a readable PNG.")
    if img.ndim == 3:
        colour = img[:, :, :3] if img.shape[2] == 4 else img
        mask = (colour > 0).any(axis=2)
        if img.shape[2] == 4:
            mask &= img[:, :, 3] > 0
        return mask
    return img > 0


def save_mask(dataset_dir: str | os.PathLike[str], key: str, mask: np.ndarray) -> Path:
    """Write the reviewed mask of ``key`` atomically (temp file + fsync + rename)."""
    path = mask_file(dataset_dir, key)
    try:
        atomic_write_bytes(path, encode_mask(mask))
    except OSError as exc:
        raise LabelError(f"Cannot save the mask {path}: {exc.strerror or exc}. The previous "
                         "mask is unchanged; check free disk space and permissions.") from exc
    return path


def load_mask(dataset_dir: str | os.PathLike[str], key: str) -> np.ndarray | None:
    """The reviewed mask of ``key`` (bool H x W), or None when the user drew none."""
    path = mask_file(dataset_dir, key)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LabelError(f"Cannot read the mask {path}: {exc.strerror or exc}.") from exc
    try:
        return decode_mask(data)
    except LabelError as exc:
        raise LabelError(f"{path}: {exc} Delete it to fall back to the dataset's mask.") from exc


def delete_mask(dataset_dir: str | os.PathLike[str], key: str) -> bool:
    """Forget the reviewed mask of ``key`` (back to the dataset's own); True if one existed."""
    path = mask_file(dataset_dir, key)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def has_mask(dataset_dir: str | os.PathLike[str], key: str) -> bool:
    return mask_file(dataset_dir, key).is_file()


# ----------------------------------------------------------------------------- classes
def classes_key(dataset_id: int) -> str:
    return CLASSES_SETTING.format(dataset_id=int(dataset_id))


def clean_classes(names: Iterable[Any]) -> list[str]:
    """Strip, drop empties, 'good' and duplicates, keep the order (classes are defect types)."""
    out: list[str] = []
    for name in names:
        text = str(name).strip()
        if text and text.lower() != "good" and text not in out:
            out.append(text)
    return out


def load_classes(workspace: Any, dataset_id: int, default: Iterable[str] = ()) -> list[str]:
    """The defect classes of a dataset (workspace setting), else ``default``."""
    stored = workspace.get_setting(classes_key(dataset_id))
    return clean_classes(stored if isinstance(stored, list) else default)


def save_classes(workspace: Any, dataset_id: int, names: Iterable[str]) -> list[str]:
    names = clean_classes(names)
    workspace.set_setting(classes_key(dataset_id), names)
    return names

