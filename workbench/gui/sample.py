"""The laptop demo path: a workspace holding every category of the shipped sample data."""

from __future__ import annotations

from pathlib import Path

from workbench.core.workspace import default_workspace_dir
from workbench.package_data import sample_data_dir

SAMPLE_WORKSPACE_NAME = "sample"


def sample_data_root() -> Path:
    """The shipped sample dataset (package data of the installed ``workbench``)."""
    return sample_data_dir()


def sample_workspace_dir() -> Path:
    """Next to the default workspace in the user data folder, so it never mixes with real work."""
    return default_workspace_dir().parent / SAMPLE_WORKSPACE_NAME
