"""Undoable review edits (QUndoStack commands): a label change and a mask edit.

Commands only carry before/after states and call back into the panel, which writes the
workspace (label rows) and the mask PNGs, so undo and redo go through the same save path
as the original edit. Masks are kept 1 bit per pixel (a 1024 x 1024 edit costs 256 KiB).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from PySide6.QtGui import QUndoCommand

from workbench.core.labels import pack_mask, unpack_mask

class ReviewTarget(Protocol):
    def apply_label(self, key: str, label: dict[str, Any] | None) -> None: ...
    def apply_mask(self, key: str, mask: np.ndarray | None) -> None: ...


def clean_label(label: dict[str, Any] | None) -> dict[str, Any] | None:
    """Only the stored fields; None when nothing is set (no label row)."""
    if not label:
        return None
    out = {"verdict": label.get("verdict") or None, "defect_class": label.get("defect_class") or None,
           "note": label.get("note") or ""}
    return out if (out["verdict"] or out["defect_class"] or out["note"]) else None


def describe(label: dict[str, Any] | None) -> str:
    if not label:
        return "clear label"
    parts = [p for p in (label.get("verdict"), label.get("defect_class")) if p]
    return " ".join(parts) if parts else "note"


class LabelCommand(QUndoCommand):
    def __init__(self, target: ReviewTarget, key: str, before: dict[str, Any] | None,
                 after: dict[str, Any] | None, name: str = "") -> None:
        super().__init__(f"{describe(after)} · {name or key}")
        self.target, self.key = target, key
        self.before, self.after = clean_label(before), clean_label(after)

    def redo(self) -> None:
        self.target.apply_label(self.key, self.after)

    def undo(self) -> None:
        self.target.apply_label(self.key, self.before)


class MaskCommand(QUndoCommand):
    """``before`` None: the image had no reviewed mask (undo deletes the file, so the
    dataset's own mask shows again)."""

    def __init__(self, target: ReviewTarget, key: str, before: np.ndarray | None, after: np.ndarray | None,
                 text: str = "edit mask") -> None:
        super().__init__(f"{text} · {key}")
        self.target, self.key = target, key
        self.before = None if before is None else pack_mask(before)
        self.after = None if after is None else pack_mask(after)

    def redo(self) -> None:
        self.target.apply_mask(self.key, None if self.after is None else unpack_mask(self.after))

    def undo(self) -> None:
        self.target.apply_mask(self.key, None if self.before is None else unpack_mask(self.before))
