"""Reviewed ground truth: the dataset's records with the user's verdicts, classes and masks
swapped in, so evaluation and threshold calibration can use what the engineer checked.

Rules, per image (``labels`` is :meth:`Workspace.labels`, keyed by :func:`label_key`):

* verdict ``OK``: the image counts as good (label ``"good"``, no mask), whatever the folder said.
* verdict ``NG``: it counts as a defect of the reviewed class, else of its own defect folder's
  class, else ``"defect"``. Its mask is the reviewed one when drawn and non-empty, else the
  dataset's mask; an NG image without any mask is left out of pixel metrics (as usual).
* no verdict (only a class, a note or a mask): the folder's verdict stands; a defect image
  still takes the reviewed class and mask.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.data import GOOD, Dataset, ImageRecord
from workbench.core.labels.storage import decode_mask, has_mask, label_key, mask_file

DEFAULT_DEFECT_CLASS = "defect"


@dataclass
class ReviewedRecords:
    """Records with reviewed ground truth plus how many of them the user reviewed."""

    records: list[ImageRecord]
    reviewed: list[bool] = field(default_factory=list)  # per record: label row or mask exists
    changed: list[bool] = field(default_factory=list)  # per record: OK/NG differs from the folder

    @property
    def n_reviewed(self) -> int:
        return sum(self.reviewed)

    @property
    def n_original(self) -> int:
        """Images still judged by the dataset's own folders and masks."""
        return len(self.records) - self.n_reviewed

    @property
    def n_changed(self) -> int:
        return sum(self.changed)

    def summary(self) -> str:
        return (f"{self.n_reviewed} reviewed / {self.n_original} original labels"
                + (f" ({self.n_changed} verdict(s) changed)" if self.n_changed else ""))


def reviewed_record(record: ImageRecord, label: Mapping[str, Any] | None,
                    mask_path: Path | None) -> ImageRecord:
    """One record with its review applied (``mask_path``: the reviewed mask file, if any)."""
    label = label or {}
    verdict = label.get("verdict")
    cls = label.get("defect_class") or None
    if verdict == "OK":
        return dataclasses.replace(record, label=GOOD, mask_path=None)
    anomalous = verdict == "NG" or (verdict is None and record.is_anomalous)
    if not anomalous:
        return record
    new_label = cls or (record.label if record.is_anomalous else DEFAULT_DEFECT_CLASS)
    new_mask = record.mask_path if record.is_anomalous else None
    if mask_path is not None:
        new_mask = mask_path if _non_empty(mask_path) else None
    return dataclasses.replace(record, label=new_label, mask_path=new_mask)


def _non_empty(path: Path) -> bool:
    return bool(decode_mask(path.read_bytes()).any())


def reviewed_records(dataset: Dataset | list[ImageRecord], labels: Mapping[str, Mapping[str, Any]],
                     labels_dir: str | os.PathLike[str] | None,
                     root: str | os.PathLike[str] | None = None) -> ReviewedRecords:
    """``dataset``'s records (or a list of records, e.g. the test split) with the reviewed
    verdicts, classes and masks swapped in.

    ``labels_dir`` is the dataset's own mask folder, ``<workspace>/labels/<dataset_id>``
    (:func:`dataset_labels_dir`), or None for labels without masks. ``root`` (the dataset
    root, which the label keys are relative to) defaults to ``dataset.root``.
    """
    if isinstance(dataset, Dataset):
        records, root = dataset.records, root if root is not None else dataset.root
    else:
        records = list(dataset)
        if root is None:
            raise ValueError("reviewed_records needs the dataset root when given a list of records.")
    out, reviewed, changed = [], [], []
    for record in records:
        key = label_key(root, record.path)
        label = labels.get(key)
        mask_path = None
        if labels_dir is not None and has_mask(labels_dir, key):
            mask_path = mask_file(labels_dir, key)
        new = reviewed_record(record, label, mask_path) if (label or mask_path) else record
        out.append(new)
        reviewed.append(bool(label) or mask_path is not None)
        changed.append(new.is_anomalous != record.is_anomalous)
    return ReviewedRecords(out, reviewed, changed)


def evaluate_reviewed(result: Any, labels: Mapping[str, Mapping[str, Any]], labels_dir: str | os.PathLike[str] | None,
                      root: str | os.PathLike[str], *, progress: Any = None, cancel: Any = None):
    """Metrics of an existing evaluation (:class:`EvalResult`) recomputed on reviewed ground
    truth: same scores and maps, reviewed verdicts and masks. Slow for big sets (pixel
    metrics): run it in a worker. Returns ``(EvalResult, ReviewedRecords)``."""
    from workbench.core.evaluation import evaluate_predictions

    if cancel is not None:
        cancel.raise_if_cancelled()
    reviewed = reviewed_records(result.records, labels, labels_dir, root)
    return evaluate_predictions(reviewed.records, result.scores, result.maps, result.predict_seconds), reviewed
