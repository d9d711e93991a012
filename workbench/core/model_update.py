"""Incremental update: add reviewed good images to a fitted model in seconds, not a retrain.

* PatchCore: the new images' patches that the memory bank does not cover yet are appended
  (coverage selection over the new patches only, see ``components.provenance.extend_coverage``).
* SPADE: the new images join both banks (SPADE keeps every training image).
* PaDiM / DFM: their statistics are running moments; the new images' moments are added and the
  Gaussians (PaDiM) or PCA subspaces (DFM) recomputed, as if trained on old + new images.

Every update writes a new package version: ``model.json`` gets ``package_version`` + 1, an
``updates`` entry (which images, with SHA-256, how many entries, seconds) and
``calibration_check`` (the thresholds were chosen on the old scores: re-check them; cleared by
the next calibration). The previous version is kept loadable under ``versions/v<N>/``, and the
test-split prediction cache is dropped (it holds the old scores). A run record of kind
``update`` is written.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.model_versions import VERSIONS_DIR, package_version

UPDATABLE_METHODS = ("patchcore", "spade", "padim", "dfm")
_NOT_COPIED = ("model.json", "weights.safetensors", "aux_tensors.safetensors")


@dataclass
class UpdateOutcome:
    model_dir: Path
    version: int
    previous: Path                # where the previous version is kept
    added: list[dict[str, Any]]   # file entries (path, sha256, bytes) of the images added
    skipped: list[str]            # images not added, with the reason
    entries_added: int            # memory-bank entries (PatchCore), images (SPADE) or 0 (statistics)
    seconds: float


def update_model(model_dir: str | Path, images: Sequence[str | Path], out_dir: str | Path | None = None, *,
                 device: Any = "cpu", progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None) -> UpdateOutcome:
    """Add the good ``images`` to the model in ``model_dir``; write the new version to ``out_dir``
    (default: in place, the old version moving to ``versions/``)."""
    from workbench.core.files import atomic_replace_dir, check_output_dir, staged_dir
    from workbench.core.formats import MODEL_PACKAGE
    from workbench.core.methods.images import LazyImages
    from workbench.core.methods.package import load_model, save_model
    from workbench.core.run_record import file_entries, new_record, save_record

    start = time.perf_counter()
    cancel = cancel or CancelToken()
    source = Path(model_dir)
    target = Path(out_dir) if out_dir is not None else source
    in_place = target.resolve() == source.resolve()
    if not in_place:
        check_output_dir(target, MODEL_PACKAGE, inputs=[("the model folder", source)])
    model = load_model(source, device=device)
    if model.name not in UPDATABLE_METHODS:
        raise ValueError(f"{model.title} cannot be updated incrementally (only PatchCore, SPADE, PaDiM and DFM "
                         "can); retrain it with the new images in the training folder.")
    files = list(model.metadata.get("training_files") or [])
    if model.name == "spade" and len(files) < model.module.image_bank.shape[0]:
        files += [{"path": f"(training image {i}, not recorded)", "sha256": "", "bytes": 0}
                  for i in range(len(files), model.module.image_bank.shape[0])]
    known = {f.get("sha256") for f in files}
    entries, skipped = [], []
    for entry in file_entries([Path(p).resolve() for p in images]):
        if entry["sha256"] in known:
            skipped.append(f"{entry['path']}: already in the training set (same file content)")
        else:
            known.add(entry["sha256"])
            entries.append(entry)
    if not entries:
        raise ValueError("No new images to add: " + ("; ".join(skipped[:3]) if skipped else "none were given."))
    new_images = LazyImages([e["path"] for e in entries])
    if model.name in ("patchcore", "spade"):
        added = model.add_normal_images(new_images, len(files), progress, cancel)
    else:
        model.update_statistics(new_images, progress, cancel)
        added = 0
    cancel.raise_if_cancelled()
    old_version = package_version(model.metadata)
    seconds = time.perf_counter() - start
    model.metadata["training_files"] = files + entries
    model.metadata["package_version"] = old_version + 1
    model.metadata.setdefault("updates", []).append({
        "version": old_version + 1, "from_version": old_version,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "added": entries, "entries_added": int(added), "seconds": round(seconds, 3)})
    model.metadata["calibration_check"] = {
        "needed": True, "since_version": old_version + 1,
        "reason": f"{len(entries)} good image(s) were added to the model (version {old_version + 1}); its "
                  "scores changed, so re-check the thresholds on labelled images (Threshold step or "
                  "'workbench calibrate')."}
    with staged_dir(target) as staging:
        package = staging / "package"
        save_model(model, package)
        _carry_history(source, package, old_version)
        save_record(package, new_record(
            "update", method=model.name, params=model.params, device=model.device,
            timings={"update": seconds}, metrics={"images_added": len(entries), "entries_added": int(added)},
            model={"version": old_version + 1, "from_version": old_version, "source": str(source),
                   "added": entries}))
        atomic_replace_dir(package, target, MODEL_PACKAGE, overwrite=in_place)
    previous = (target / VERSIONS_DIR / f"v{old_version}")
    return UpdateOutcome(target, old_version + 1, previous, entries, skipped, int(added), seconds)


def _carry_history(source: Path, package: Path, old_version: int) -> None:
    """The new package keeps the old one's masks, run records and versions, plus a loadable copy of
    the old version itself (without its prediction cache, which the new scores make stale)."""
    for item in source.iterdir():
        if item.name.startswith(".") or item.name.startswith("predictions-"):
            continue
        if item.name == VERSIONS_DIR or item.name == "run_records":
            shutil.copytree(item, package / item.name, dirs_exist_ok=True)
        elif item.is_file() and item.name not in _NOT_COPIED:
            shutil.copy2(item, package / item.name)  # ROI / ignore masks of the policy
    keep = package / VERSIONS_DIR / f"v{old_version}"
    keep.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and not item.name.startswith((".", "predictions-")):
            shutil.copy2(item, keep / item.name)


__all__ = ["UPDATABLE_METHODS", "UpdateOutcome", "update_model"]
