"""What is open right now: the workspace, the current dataset and the active model.

Panels never talk to each other; they read and change this one object and listen to its
signals, so adding a panel (Threshold, Review, Export) needs no change to existing ones.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from workbench.core.data import Dataset
from workbench.core.workspace import DatasetEntry, ModelEntry, Workspace
from workbench.gui.workers import JobRunner

log = logging.getLogger(__name__)

LAST_DATASET_KEY = "gui.last_dataset_id"
LAST_MODEL_KEY = "gui.last_model_id"


class Session(QObject):
    workspaceChanged = Signal(object)  # Workspace | None
    datasetsChanged = Signal()  # datasets were added to / removed from the workspace
    datasetChanged = Signal(object, object)  # (DatasetEntry | None, Dataset | None)
    modelsChanged = Signal()  # models of the workspace were added, deleted or re-evaluated
    activeModelChanged = Signal(object)  # ModelEntry | None

    def __init__(self, jobs: JobRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.workspace: Workspace | None = None
        self.dataset_entry: DatasetEntry | None = None
        self.dataset: Dataset | None = None
        self.active_model: ModelEntry | None = None

    # ------------------------------------------------------------------ workspace
    def set_workspace(self, workspace: Workspace | None) -> None:
        """Switch workspace (closing the previous one); the dataset and model are reset."""
        old, self.workspace = self.workspace, workspace
        if old is not None and old is not workspace:
            old.close()
        self.dataset_entry, self.dataset, self.active_model = None, None, None
        self.workspaceChanged.emit(workspace)
        self.datasetsChanged.emit()
        self.datasetChanged.emit(None, None)
        self.modelsChanged.emit()
        self.activeModelChanged.emit(None)

    def close(self) -> None:
        if self.workspace is not None:
            self.workspace.close()
            self.workspace = None

    def datasets(self) -> list[DatasetEntry]:
        return self.workspace.datasets() if self.workspace else []

    def models(self) -> list[ModelEntry]:
        """Models of the current dataset (the comparison table shows these)."""
        if self.workspace is None or self.dataset_entry is None:
            return []
        return self.workspace.models(self.dataset_entry.id)

    # ------------------------------------------------------------------ dataset / model
    def set_dataset(self, entry: DatasetEntry | None, dataset: Dataset | None) -> None:
        self.dataset_entry, self.dataset = entry, dataset
        if self.workspace is not None and entry is not None:
            self.workspace.set_setting(LAST_DATASET_KEY, entry.id)
        self.datasetChanged.emit(entry, dataset)
        self.modelsChanged.emit()
        models = self.models()
        if self.active_model is None or all(m.id != self.active_model.id for m in models):
            last = self.workspace.get_setting(LAST_MODEL_KEY) if self.workspace else None
            chosen = next((m for m in models if m.id == last), models[-1] if models else None)
            self.set_active_model(chosen)

    def set_active_model(self, entry: ModelEntry | None) -> None:
        self.active_model = entry
        if self.workspace is not None and entry is not None:
            self.workspace.set_setting(LAST_MODEL_KEY, entry.id)
        self.activeModelChanged.emit(entry)

    def notify_datasets_changed(self) -> None:
        self.datasetsChanged.emit()

    def notify_models_changed(self) -> None:
        self.modelsChanged.emit()

    def last_dataset_id(self) -> int | None:
        return self.workspace.get_setting(LAST_DATASET_KEY) if self.workspace else None
