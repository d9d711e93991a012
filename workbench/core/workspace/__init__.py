"""The workspace: the folder where a quality engineer's datasets, trained models, thresholds
and labels live (see :mod:`.store` for the on-disk layout and the safety rules)."""

from .store import (
    DB_FILE,
    RUN_FINISHED_STATUSES,
    RUN_RUNNING,
    SCHEMA_VERSION,
    VERDICTS,
    DatasetEntry,
    ModelEntry,
    RunEntry,
    Workspace,
    WorkspaceError,
    default_workspace_dir,
)

__all__ = [
    "DB_FILE",
    "RUN_FINISHED_STATUSES",
    "RUN_RUNNING",
    "SCHEMA_VERSION",
    "VERDICTS",
    "DatasetEntry",
    "ModelEntry",
    "RunEntry",
    "Workspace",
    "WorkspaceError",
    "default_workspace_dir",
]
