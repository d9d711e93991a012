"""Plain data objects describing an imported dataset. No I/O happens here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

GOOD = "good"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset.

    ``label`` is ``"good"`` or the defect type (e.g. ``"scratch"``); ``mask_path`` is the
    ground-truth mask for defective images when one exists (white = defect).
    """

    path: Path
    split: str
    label: str
    mask_path: Path | None = None

    @property
    def is_good(self) -> bool:
        return self.label == GOOD

    @property
    def is_anomalous(self) -> bool:
        return self.label != GOOD


@dataclass
class ImportReport:
    """What an importer found, so the user can see at a glance what is usable.

    Problems never abort an import: unreadable files are skipped and listed with a reason.
    """

    layout: str
    root: Path
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (split, label) -> n
    missing_masks: list[Path] = field(default_factory=list)  # defect images without a mask
    orphan_masks: list[Path] = field(default_factory=list)  # masks matching no image
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Human-readable multi-line report for the CLI and the GUI."""
        lines = [f"Layout: {self.layout}   Root: {self.root}"]
        for split in sorted({s for s, _ in self.counts}, key=_split_order):
            per = {lab: n for (s, lab), n in sorted(self.counts.items()) if s == split}
            total = sum(per.values())
            detail = ", ".join(f"{lab}: {n}" for lab, n in per.items())
            lines.append(f"  {split:<5} {total:>5} images  ({detail})")
        if self.missing_masks:
            lines.append(f"  {len(self.missing_masks)} defect image(s) without a mask")
        if self.orphan_masks:
            lines.append(f"  {len(self.orphan_masks)} mask(s) without a matching image")
        if self.unreadable:
            lines.append(f"  {len(self.unreadable)} unreadable file(s) skipped:")
            lines.extend(f"    {p}: {why}" for p, why in self.unreadable[:20])
            if len(self.unreadable) > 20:
                lines.append(f"    ... and {len(self.unreadable) - 20} more")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def _split_order(split: str) -> int:
    return SPLITS.index(split) if split in SPLITS else len(SPLITS)


@dataclass
class Dataset:
    """An imported dataset (one product category): records plus the import report."""

    name: str
    root: Path
    layout: str
    records: list[ImageRecord]
    report: ImportReport

    def split(self, split: str) -> list[ImageRecord]:
        return [r for r in self.records if r.split == split]

    @property
    def train(self) -> list[ImageRecord]:
        """Good training images: the only images unsupervised methods ever fit on."""
        return [r for r in self.records if r.split == "train" and r.is_good]

    @property
    def test(self) -> list[ImageRecord]:
        return self.split("test")

    @property
    def defect_types(self) -> list[str]:
        return sorted({r.label for r in self.records if r.is_anomalous})


class DatasetError(ValueError):
    """A dataset cannot be imported. ``str()`` names the folder, the problem and the fix."""


def require_training_images(dataset: Dataset, hint: str) -> Dataset:
    """Raise DatasetError unless ``dataset`` has good training images.

    Unsupervised methods fit on good images only, so an import without them is useless;
    ``hint`` says where the user should put them for this layout.
    """
    if dataset.train:
        return dataset
    skipped = len(dataset.report.unreadable)
    extra = f" ({skipped} unreadable file(s) were skipped, see the import report)" if skipped else ""
    raise DatasetError(
        f"No good training images found in '{dataset.root}'{extra}: an unsupervised method "
        f"needs good images to train on; {hint}."
    )
