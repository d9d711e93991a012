"""Reading images and masks from disk into one predictable form.

Every image leaves here as RGB ``uint8`` of shape ``(H, W, 3)`` whatever it was on disk
(grayscale, RGBA, palette, 16-bit, float TIFF), because users' cameras produce all of these
and rejecting them is one of the most common complaints about existing tools. Masks leave
as ``bool`` ``(H, W)``. Anything that cannot be read raises :class:`ImageReadError`, whose
message names the file, says what is wrong and what to do about it.

Decisions worth knowing:

* Files are read with ``np.fromfile`` + ``cv2.imdecode`` so that non-ASCII paths work on
  Windows (``cv2.imread`` cannot open them there).
* ``IMREAD_UNCHANGED`` keeps bit depth and alpha, and also means EXIF orientation is
  *ignored*: pixels are used exactly as stored, which is what fixed inspection cameras want
  (and what mask annotation tools usually draw on).
* Alpha is composited on black: fully transparent pixels become black, so a transparent
  background never leaks whatever colour values happen to be hidden under it.
* Integer images deeper than 8 bit are scaled by their *effective* bit depth: the smallest
  of 8, 10, 12, 14, 16 (or the dtype's width) bits that holds the image's maximum. A 12-bit
  line-scan camera stored in 16-bit PNGs thus maps 4095 -> 255 instead of looking almost
  black. Because this looks at each image's own maximum, a very dark image can be assigned
  a smaller depth than its siblings; pass ``bit_depth=`` to fix the depth for a whole set.
* Float images in [0, 1] are scaled by 255; any other float range is stretched by the
  image's own min..max (there is no standard for it); NaN/inf become 0.
* Images above :data:`MAX_IMAGE_PIXELS` (200 megapixels) are refused from their header,
  before anything is decoded: one such image decodes to gigabytes (16-bit RGBA) and would
  stall or kill a laptop. Downscale or tile them first. Only the five sniffed formats are
  ever handed to OpenCV, and only when their header gives the size: OpenCV's other decoders
  (Radiance HDR, PNM, ...) would decode any size, whatever the file is named.
* Symbolic links are followed; a link whose target is missing is listed as unreadable.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np

from .records import GOOD, DatasetError, ImageRecord, ImportReport

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})

MAX_IMAGE_PIXELS = 200_000_000  # width x height; larger images are refused before decoding
MAX_FILE_BYTES = 2 * 1024**3  # larger files are refused before they are read into memory

_STANDARD_DEPTHS = (8, 10, 12, 14, 16)
_TAIL = 4096  # bytes searched for end-of-image markers (writers may append padding)


class ImageReadError(ValueError):
    """An image or mask file cannot be used. ``str()`` is written for the end user."""

    def __init__(self, path: str | os.PathLike[str], reason: str, hint: str | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.hint = hint or "Re-export or re-copy the file, or remove it from the dataset folder."
        super().__init__(f"Cannot read image '{self.path}': {reason}. {self.hint}")


# ----------------------------------------------------------------------------- decoding


def _sniff(data: bytes) -> str | None:
    """Container format from the magic bytes (file suffixes are often wrong)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    return None


def _truncation(data: bytes, fmt: str | None) -> str | None:
    """Cheap end-of-file checks: some decoders (JPEG in OpenCV 4) silently grey-fill cut files."""
    if fmt == "png" and b"IEND" not in data[-_TAIL:]:
        return "truncated PNG (the end-of-image chunk is missing: the file was cut off)"
    if fmt == "jpeg" and b"\xff\xd9" not in data[-_TAIL:]:
        return "truncated JPEG (the end-of-image marker is missing: the file was cut off)"
    if fmt == "bmp" and len(data) >= 6 and len(data) < int.from_bytes(data[2:6], "little"):
        return "truncated BMP (file is shorter than its header says)"
    if fmt == "webp" and len(data) < int.from_bytes(data[4:8], "little") + 8:
        return "truncated WebP (file is shorter than its header says)"
    return None


# Reading a damaged TIFF header is expected here (the decoder then reports the damage).
warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning, module=r"PIL\.TiffImagePlugin")

_PIL_HEADER_READERS = {"png": ("PngImagePlugin", "PngImageFile"), "jpeg": ("JpegImagePlugin", "JpegImageFile"),
                       "bmp": ("BmpImagePlugin", "BmpImageFile"), "tiff": ("TiffImagePlugin", "TiffImageFile"),
                       "webp": ("WebPImagePlugin", "WebPImageFile")}


def _header_size(fp, fmt: str | None) -> tuple[int, int] | None:
    """(width, height) from the file header without decoding pixels; None if unknown.

    Pillow's format classes are used directly, because ``Image.open`` itself refuses images
    above Pillow's own (smaller) decompression-bomb limit before telling us the size.
    """
    if fmt not in _PIL_HEADER_READERS:
        return None
    module, cls = _PIL_HEADER_READERS[fmt]
    try:
        size = getattr(importlib.import_module(f"PIL.{module}"), cls)(fp).size
        return int(size[0]), int(size[1])
    except Exception:  # noqa: BLE001 - an unparsable header is left to OpenCV to report
        return None


def image_dimensions(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(height, width)`` of an image file read from its header only; None if unknown."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            fh.seek(0)
            size = _header_size(fh, _sniff(head))
    except OSError:
        return None
    return None if size is None else (size[1], size[0])


def _check_pixel_limit(path: Path, data: bytes, fmt: str | None) -> None:
    """Refuse, before any decoding, an image whose size is above the limit *or cannot be known*.

    OpenCV decodes many more formats than the five sniffed here (Radiance HDR, PNM, Sun
    raster, PFM, ...) without any size limit, whatever the file is named: those are refused
    outright, and so is a supported format whose header cannot be parsed.
    """
    if fmt is None:
        raise ImageReadError(path, "not a supported image format (not PNG, JPEG, BMP, TIFF or WebP)",
                             "Convert it to PNG, or remove it from the dataset folder.")
    size = _header_size(BytesIO(data), fmt)
    if size is None:
        raise ImageReadError(path, f"corrupt or unsupported {fmt.upper()} data (its header cannot be read, so "
                             "its size cannot be checked before decoding)")
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        w, h = size
        raise ImageReadError(path, f"image is {w}x{h} pixels ({w * h / 1e6:.0f} megapixels), above the "
                             f"limit of {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels",
                             "Downscale it or cut it into tiles before importing.")


def _load_bytes(path: Path) -> bytes:
    if not path.exists():
        if path.is_symlink():
            raise ImageReadError(path, f"broken symbolic link (its target '{os.readlink(path)}' does not "
                                 "exist)", "Fix or delete the link.")
        raise ImageReadError(path, "file not found", "Check the path, or re-scan the dataset folder.")
    if path.is_dir():
        raise ImageReadError(path, "this is a folder, not an image file", "Point to an image file.")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageReadError(path, f"file is {size / 1e6:.0f} MB, above the limit of "
                                 f"{MAX_FILE_BYTES / 1e6:.0f} MB", "Downscale it or cut it into tiles before importing.")
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(path, f"cannot open the file ({exc.strerror or exc})",
                             "Check that the file is not locked and that you may read it.") from exc
    if not data:
        raise ImageReadError(path, "file is empty (0 bytes)",
                             "It was probably not copied completely: copy it again or delete it.")
    return data


def _decode(path: str | os.PathLike[str], flags: int = cv2.IMREAD_UNCHANGED) -> tuple[np.ndarray, str | None]:
    """Raw decoded array (OpenCV channel order) and sniffed format, or ImageReadError."""
    path = Path(path)
    data = _load_bytes(path)
    fmt = _sniff(data)
    problem = _truncation(data, fmt)
    if problem:
        raise ImageReadError(path, problem)
    _check_pixel_limit(path, data, fmt)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:  # OpenCV raises for some malformed headers instead of returning None
        img = None
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "decoder error"
    else:
        detail = ""
    if img is None or img.size == 0:
        if fmt is None:
            raise ImageReadError(path, "not a supported image format (not PNG, JPEG, BMP, TIFF or WebP)",
                                 "Convert it to PNG, or remove it from the dataset folder.")
        suffix = f": {detail}" if detail else ""
        raise ImageReadError(path, f"corrupt or unsupported {fmt.upper()} data{suffix}")
    return img, fmt


# ----------------------------------------------------------------------------- conversion


def effective_bit_depth(img: np.ndarray) -> int:
    """Smallest standard bit depth holding the image maximum (see module docstring)."""
    width = img.dtype.itemsize * 8
    peak = int(img.max()) if img.size else 0
    for bits in (*_STANDARD_DEPTHS, width):
        if bits <= width and peak < (1 << bits):
            return bits
    return width


def _to_uint8(img: np.ndarray, bit_depth: int | None) -> np.ndarray:
    """Colour data of any dtype to uint8."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    if np.issubdtype(img.dtype, np.floating):
        return _float_to_uint8(img)
    if np.issubdtype(img.dtype, np.signedinteger):
        img = np.clip(img, 0, None)
    bits = bit_depth or effective_bit_depth(img)
    scale = 255.0 / ((1 << bits) - 1)
    return np.clip(np.rint(img.astype(np.float64) * scale), 0, 255).astype(np.uint8)


def _float_to_uint8(img: np.ndarray) -> np.ndarray:
    img = np.nan_to_num(img.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(img.min()), float(img.max())) if img.size else (0.0, 0.0)
    if lo >= 0.0 and hi <= 1.0:
        scaled = img * 255.0
    else:
        scaled = (img - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(img)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _alpha_fraction(alpha: np.ndarray) -> np.ndarray:
    if np.issubdtype(alpha.dtype, np.floating):
        return np.clip(np.nan_to_num(alpha.astype(np.float32)), 0.0, 1.0)
    return alpha.astype(np.float32) / float(np.iinfo(alpha.dtype).max)


def to_rgb_uint8(img: np.ndarray, bit_depth: int | None = None) -> np.ndarray:
    """OpenCV-decoded array (gray, BGR, BGRA; any dtype) -> RGB uint8 (H, W, 3)."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"unsupported image shape {img.shape}")
    channels = img.shape[2]
    alpha = img[:, :, -1] if channels in (2, 4) else None
    colour = img[:, :, : channels - 1] if alpha is not None else img
    rgb = _to_uint8(np.ascontiguousarray(colour), bit_depth)
    rgb = cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB) if rgb.shape[2] == 1 else cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB)
    if alpha is not None:
        frac = _alpha_fraction(alpha)[:, :, None]
        rgb = np.rint(rgb.astype(np.float32) * frac).astype(np.uint8)
    return np.ascontiguousarray(rgb)


# ----------------------------------------------------------------------------- public API


def read_image(path: str | os.PathLike[str], bit_depth: int | None = None) -> np.ndarray:
    """Read any supported image as RGB uint8 ``(H, W, 3)``.

    ``bit_depth`` fixes the scaling of >8-bit integer images (e.g. 12 for a 12-bit camera);
    by default it is inferred per image (see module docstring).
    """
    img, _ = _decode(path)
    try:
        return to_rgb_uint8(img, bit_depth)
    except ValueError as exc:
        raise ImageReadError(path, str(exc), "Convert it to an 8-bit RGB or grayscale PNG.") from exc


def read_mask(path: str | os.PathLike[str], shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read a ground-truth mask as ``bool (H, W)``; any non-zero pixel is defect.

    JPEG masks are binarised at half range instead, since compression noise makes black
    pixels near a defect slightly non-zero. Transparent pixels (alpha 0) are never defect.
    If ``shape`` (``(H, W)`` or ``(H, W, C)``) differs, the mask is resized as float and
    binarised at 0.5, matching how the metrics compare masks at another resolution.
    """
    img, fmt = _decode(path)
    mask = _mask_from_array(img, lossy=fmt == "jpeg")
    if shape is not None and tuple(shape[:2]) != mask.shape:
        mask = resize_mask(mask, (int(shape[0]), int(shape[1])))
    return mask


def _mask_from_array(img: np.ndarray, lossy: bool) -> np.ndarray:
    if img.ndim == 2:
        img = img[:, :, None]
    channels = img.shape[2]
    colour = img[:, :, : channels - 1] if channels in (2, 4) else img
    if lossy:
        mask = _to_uint8(np.ascontiguousarray(colour), None).max(axis=2) > 127
    else:
        mask = (colour > 0).any(axis=2)
    if channels in (2, 4):
        mask &= img[:, :, -1] > 0
    return mask


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a boolean mask to ``(H, W)``: interpolate as float, binarise at 0.5."""
    h, w = shape
    shrinking = h * w < mask.shape[0] * mask.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(mask.astype(np.float32), (w, h), interpolation=interp) >= 0.5


def probe_image(path: str | os.PathLike[str]) -> str | None:
    """Return why ``path`` is unusable, or None if it decodes. Used on every file at import.

    A full decode is the only reliable check for corrupt data; JPEGs are decoded at 1/8
    scale (libjpeg skips most of the work) after the end-of-image check.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".jpg", ".jpeg"):
            _, fmt = _decode(path, cv2.IMREAD_REDUCED_GRAYSCALE_8)
            if fmt == "jpeg":
                return None
        read_image(path)
    except ImageReadError as exc:
        return exc.reason
    return None


# ----------------------------------------------------------------------------- import helpers


def is_image_file(path: Path) -> bool:
    """Image suffix and not a hidden file (macOS ``._x.png`` resource forks look like images).

    A broken symbolic link with an image suffix counts too, so that the import report lists it
    as unreadable instead of it silently vanishing.
    """
    return ((path.is_file() or (path.is_symlink() and not path.exists()))
            and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."))


def list_images(folder: Path, recursive: bool = False, report: ImportReport | None = None) -> list[Path]:
    """Image files in ``folder``, sorted; ignored non-image files become a report warning.

    A folder that cannot be listed (permissions) is reported as unreadable and yields nothing.
    """
    if not folder.is_dir():
        return []
    images, ignored = [], []
    try:
        entries = list(folder.rglob("*") if recursive else folder.iterdir())
    except OSError as exc:
        if report is not None:
            report.unreadable.append((folder, f"cannot list this folder ({exc.strerror or exc})"))
        return []
    for p in entries:
        if any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        if is_image_file(p):
            images.append(p)
        elif p.is_file():
            ignored.append(p.name)
    if ignored and report is not None:
        shown = ", ".join(sorted(ignored)[:5]) + (" ..." if len(ignored) > 5 else "")
        report.warnings.append(f"{len(ignored)} non-image file(s) ignored in {folder}: {shown}")
    return sorted(images, key=_path_key)


def list_subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders, sorted."""
    if not folder.is_dir():
        return []
    try:
        entries = list(folder.iterdir())
    except OSError:  # unreadable folder: its images are reported by list_images
        return []
    return sorted((p for p in entries if p.is_dir() and not p.name.startswith(".") and not _loops_back(p, folder)),
                  key=_path_key)


def _loops_back(sub: Path, folder: Path) -> bool:
    """A symbolic link to ``folder`` itself or to a folder above it (``self -> .``): following it
    would list the same images again under another name."""
    if not sub.is_symlink():
        return False
    try:
        target, here = sub.resolve(), folder.resolve()
    except (OSError, RuntimeError):  # a link cycle that cannot be resolved at all
        return True
    return target == here or target in here.parents


def existing_dir(root: str | os.PathLike[str]) -> Path:
    """Absolute dataset folder, or DatasetError saying what is wrong with it."""
    path = Path(root).expanduser().absolute()
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is a file, not a folder"
        raise DatasetError(f"Dataset folder '{path}' {what}. Choose the folder that holds your images.")
    return path


def pick_category(root: Path, category: str | None, available: list[str]) -> str:
    """The category to load; a lone category is taken without asking."""
    if category is None:
        if len(available) == 1:
            return available[0]
        raise DatasetError(f"'{root}' holds several categories; choose one with category=... "
                           f"Available: {', '.join(available)}.")
    if category not in available:
        raise DatasetError(f"Category '{category}' not found in '{root}'. "
                           f"Available: {', '.join(available) or 'none'}.")
    return category


def _path_key(p: Path) -> str:
    return str(p)


def validate_records(candidates: Iterable[ImageRecord], report: ImportReport,
                     check_images: bool = True) -> list[ImageRecord]:
    """Keep the readable records and fill the report (counts, unreadable, missing masks).

    Files are probed on a thread pool (OpenCV releases the GIL while decoding); order is kept.
    An unreadable mask is reported and dropped, so its image counts as having no mask.
    """
    candidates = _unique_files(list(candidates), report)
    paths = sorted({r.path for r in candidates} | {r.mask_path for r in candidates if r.mask_path})
    reasons = dict(zip(paths, _probe_all(paths))) if check_images else {}
    kept: list[ImageRecord] = []
    resized_masks: list[str] = []
    for rec in candidates:
        if reasons.get(rec.path):
            report.unreadable.append((rec.path, reasons[rec.path]))
            continue
        if rec.mask_path is not None and reasons.get(rec.mask_path):
            report.unreadable.append((rec.mask_path, reasons[rec.mask_path]))
            rec = ImageRecord(rec.path, rec.split, rec.label, None)
        if rec.label != GOOD and rec.mask_path is None:
            report.missing_masks.append(rec.path)
        if check_images and rec.mask_path is not None and _sizes_differ(rec.path, rec.mask_path):
            resized_masks.append(rec.mask_path.name)
        report.counts[(rec.split, rec.label)] += 1
        kept.append(rec)
    if resized_masks:
        shown = ", ".join(resized_masks[:5]) + (" ..." if len(resized_masks) > 5 else "")
        report.warnings.append(f"{len(resized_masks)} mask(s) differ in size from their image and are resized "
                               f"to match it (binarised at 0.5): {shown}. Check that each mask belongs to its image.")
    return kept


def _unique_files(candidates: list[ImageRecord], report: ImportReport) -> list[ImageRecord]:
    """Each file once: a symbolic link to a folder already listed would count its images twice.

    Files are compared by their real folder and their own name, so a link to a *file* (an
    image listed under a second name on purpose) is still kept."""
    seen: set[tuple[Path, str]] = set()
    kept, twice = [], []
    for rec in candidates:
        real = real_folder_key(rec.path)
        if real in seen:
            twice.append(rec.path)
            continue
        seen.add(real)
        kept.append(rec)
    if twice:
        shown = ", ".join(str(p) for p in twice[:3]) + (" ..." if len(twice) > 3 else "")
        report.warnings.append(f"{len(twice)} image(s) reached a second time through a symbolic link were "
                               f"counted once: {shown}")
    return kept


def real_folder_key(path: Path) -> tuple[Path, str]:
    """(real folder, file name): the same for a file reached through a linked folder."""
    try:
        return path.parent.resolve(), path.name
    except (OSError, RuntimeError):  # a link cycle
        return path.parent, path.name


def _sizes_differ(image: Path, mask: Path) -> bool:
    a, b = image_dimensions(image), image_dimensions(mask)
    return a is not None and b is not None and a != b


def _probe_all(paths: list[Path]) -> list[str | None]:
    workers = min(8, os.cpu_count() or 1)
    if len(paths) < 16 or workers == 1:
        return [probe_image(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(probe_image, paths))
