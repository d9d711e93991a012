"""Reviewed labels: mask storage, reviewed ground truth, mask editing, MVTec / COCO exchange.

No Qt here: the review panel calls these, and so can the CLI or a script.
"""

from .editing import (
    fill_from_map, fill_polygon, mask_contours, pack_mask, paint_stroke, region_contours, unpack_mask,
)
from .exchange import (
    COCO_MASK_ENCODING, ExchangeReport, ImportedLabel, export_coco, export_mvtec, read_coco_labels,
    read_mvtec_labels, store_labels,
)
from .reviewed import ReviewedRecords, evaluate_reviewed, reviewed_record, reviewed_records
from .storage import (
    LabelError, classes_key, clean_classes, dataset_labels_dir, delete_mask, has_mask, label_key,
    load_classes, load_mask, mask_file, save_classes, save_mask,
)

__all__ = [
    "COCO_MASK_ENCODING", "ExchangeReport", "ImportedLabel", "LabelError", "ReviewedRecords",
    "classes_key", "clean_classes", "dataset_labels_dir", "delete_mask", "evaluate_reviewed", "export_coco", "export_mvtec",
    "fill_from_map", "fill_polygon", "has_mask", "label_key", "load_classes", "load_mask", "mask_contours",
    "mask_file", "pack_mask", "paint_stroke", "read_coco_labels", "read_mvtec_labels", "region_contours",
    "reviewed_record", "reviewed_records", "save_classes", "save_mask", "store_labels", "unpack_mask",
]
