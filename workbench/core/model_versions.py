"""Package versions and the "calibration needs a re-check" flag (torch-free: the Threshold step,
``predict`` and the Inspector read these from ``model.json`` alone).

An incremental update (:mod:`workbench.core.model_update`) bumps ``package_version``, keeps the
previous version under ``versions/v<N>/`` and sets ``calibration_check``; the next saved
calibration clears it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

VERSIONS_DIR = "versions"


def package_version(meta: dict[str, Any]) -> int:
    """The package's version number (1 for a package never updated)."""
    value = meta.get("package_version", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1


def recheck_message(meta: dict[str, Any]) -> str | None:
    """Why the thresholds should be re-checked, or None when they are current."""
    check = meta.get("calibration_check")
    if isinstance(check, dict) and check.get("needed"):
        return str(check.get("reason") or "the model changed since it was calibrated: re-check the thresholds.")
    return None


def clear_recheck(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with the re-check flag cleared (a calibration was just saved on the current scores)."""
    out = dict(meta)
    if isinstance(out.get("calibration_check"), dict):
        out["calibration_check"] = {**out["calibration_check"], "needed": False}
    return out


def previous_versions(model_dir: str | Path) -> list[Path]:
    """Folders of the kept earlier versions, oldest first (each a loadable package)."""
    folder = Path(model_dir) / VERSIONS_DIR
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith("v") and p.name[1:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[1:]))


__all__ = ["VERSIONS_DIR", "clear_recheck", "package_version", "previous_versions", "recheck_message"]
