"""Dataset import: MVTec, VisA and plain-folder layouts into :class:`Dataset` records.

Start with :func:`load_dataset`, which detects the layout. Images are read with
:func:`read_image` (always RGB uint8) and masks with :func:`read_mask` (always bool).
"""

from .detect import detect_layout, list_categories, load_dataset
from .folder import load_folder
from .io import IMAGE_SUFFIXES, ImageReadError, probe_image, read_image, read_mask
from .mvtec import load_mvtec
from .records import GOOD, Dataset, DatasetError, ImageRecord, ImportReport
from .visa import load_visa

__all__ = [
    "GOOD",
    "IMAGE_SUFFIXES",
    "Dataset",
    "DatasetError",
    "ImageReadError",
    "ImageRecord",
    "ImportReport",
    "detect_layout",
    "list_categories",
    "load_dataset",
    "load_folder",
    "load_mvtec",
    "load_visa",
    "probe_image",
    "read_image",
    "read_mask",
]
