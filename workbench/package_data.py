"""Files shipped inside the ``workbench`` package: style sheet, icons, sample data and models.

Why a module: the app used to find them relative to the source checkout
(``Path(workbench.__file__).parents[1]``), which silently loses them in a wheel install or a
frozen bundle. ``importlib.resources`` finds them the same way in an editable install, a
normal (non-editable) wheel install and a PyInstaller bundle (which collects them as data
files under ``workbench/``).

Everything here needs real files on disk (OpenCV, Qt and SQLite open paths), so a package
imported from a zip archive is refused with a clear message instead of failing later.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

RESOURCES = "resources"
SAMPLE_DATA = "sample_data"
SAMPLE_MODELS = "sample_models"
APP_ICON = "icons/workbench.png"
APP_ICON_SVG = "icons/workbench.svg"
STYLE_SHEET = "style.qss"
DARK_STYLE_SHEET = "style-dark.qss"
THEME_STYLE_SHEETS = {"light": STYLE_SHEET, "dark": DARK_STYLE_SHEET}  # the settings dialog's themes


def package_dir(name: str) -> Path:
    """The folder ``name`` shipped inside the installed ``workbench`` package (may not exist)."""
    root = resources.files("workbench")
    if not isinstance(root, Path):
        raise RuntimeError(f"The workbench package is not installed as plain files ({root!r}); "
                           "reinstall it with pip (zip imports are not supported).")
    return root / name


def resource_path(relative: str) -> Path:
    """A file under ``workbench/resources`` (e.g. ``style.qss``, ``icons/workbench.png``)."""
    return package_dir(RESOURCES) / relative


def sample_data_dir() -> Path:
    """The shipped synthetic MVTec-layout sample dataset (``workbench/sample_data``)."""
    return package_dir(SAMPLE_DATA)


def sample_models_dir() -> Path:
    """The shipped pre-trained, calibrated sample models (one folder per sample category)."""
    return package_dir(SAMPLE_MODELS)
