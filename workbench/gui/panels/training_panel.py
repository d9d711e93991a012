"""Step 2 - Method & Training: pick a method, set its parameters, train, compare models.

Training, evaluation and inference run in workers; the workspace is written only from the
GUI thread after a job finished, so Cancel really leaves no model behind.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from collections.abc import Callable

from PySide6.QtCore import QModelIndex, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView, QGroupBox, QHBoxLayout, QLabel, QListView, QPushButton, QScrollArea,
    QSplitter, QStackedWidget, QStyle, QVBoxLayout, QWidget,
)

from workbench.core.data import Dataset
from workbench.core.methods import DEFAULT_METHOD, METHODS
from workbench.core.workspace import DatasetEntry, ModelEntry, Workspace
from workbench.core.calibration.policy import InspectionPolicy
from workbench.core.calibration.thresholds import weak_model_warning
from workbench.core.training import training_split
from workbench.gui.pipelines import InferenceSummary, TrainingOutcome, run_inference, train_evaluate_save
from workbench.gui.panels.models_box import ModelsBox
from workbench.gui.qtmodels import MethodListModel
from workbench.gui.qtmodels.roles import ObjectRole
from workbench.gui.session import Session
from workbench.gui.widgets import errors
from workbench.gui.widgets.job_progress import JobProgress
from workbench.gui.widgets.param_form import ParamForm
from workbench.gui.workers import Worker

log = logging.getLogger(__name__)

PARAMS_KEY = "gui.params.{method}"  # last parameters used per method, per workspace


def good_images_text(dataset: Dataset) -> str:
    """How many good images training fits on and how many it holds out, and why (the training
    log reports the fitted count, which is smaller than the folder's when images are held out).
    The counts come from core's :func:`training_split`, the rule training itself follows."""
    split = training_split(dataset)
    n_good = len(dataset.train)
    if split.from_val:
        return (f"{n_good} good training images, all fitted; {len(split.holdout)} good 'val' images "
                "measure good-score statistics")
    if not split.holdout:
        return f"{n_good} good training images (all fitted: under 10, none held out for score statistics)"
    return (f"{n_good} good images: {len(split.fit)} to fit, {len(split.holdout)} held out to measure "
            "good-score statistics")


class TrainingPanel(QWidget):
    """Method list, generated parameter form, training progress and the model comparison.

    ``inferenceFinished(InferenceSummary)`` after a folder / test-split run (the main window
    opens it in Review). :attr:`screen_policy` (set by the main window) gives the policy a run
    decides with: ``(policy, unsaved)`` of the Threshold step for a model, or None for the
    model's saved one.
    """

    inferenceFinished = Signal(object)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.screen_policy: Callable[[ModelEntry], tuple[InspectionPolicy, bool] | None] | None = None
        self.job: Worker | None = None
        self.sweeps = None  # SweepLauncher, made when the first sweep starts
        self.last_outcome: TrainingOutcome | None = None
        self.last_inference: InferenceSummary | None = None
        self._run: tuple[Workspace, int] | None = None  # history row of the running training
        self.forms: dict[str, ParamForm] = {}

        self.methods_model = MethodListModel(parent=self)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.setChildrenCollapsible(False)
        top.addWidget(self._build_methods())
        top.addWidget(self._build_params())
        top.addWidget(self._build_progress())
        top.setStretchFactor(0, 2)
        top.setStretchFactor(1, 3)
        top.setStretchFactor(2, 4)
        top.setSizes([300, 330, 520])
        outer = QSplitter(Qt.Orientation.Vertical)
        outer.setChildrenCollapsible(False)
        outer.addWidget(top)
        outer.addWidget(self._build_models())
        # The models box keeps its four-row minimum; every other pixel goes to the form and progress.
        outer.setStretchFactor(0, 4)
        outer.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        # What training will use, on one line across the panel (in the narrow Parameters column it
        # wrapped to five lines and left the form room for six parameters at 768 px).
        layout.addWidget(self.dataset_label)
        layout.addWidget(outer, 1)

        session.datasetChanged.connect(self._on_dataset_changed)
        session.workspaceChanged.connect(lambda _ws: self._restore_params())
        self.select_method(DEFAULT_METHOD)
        self._update_enabled()

    # ------------------------------------------------------------------ building
    def _build_methods(self) -> QWidget:
        self.method_view = QListView()
        self.method_view.setObjectName("methodList")
        self.method_view.setModel(self.methods_model)
        self.method_view.setSpacing(2)
        self.method_view.setWordWrap(True)
        self.method_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.method_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.method_view.selectionModel().currentChanged.connect(self._method_clicked)
        self.method_description = QLabel("")
        self.method_description.setWordWrap(True)
        self.method_description.setObjectName("description")
        self.method_description.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        box = QGroupBox("Method")
        lay = QVBoxLayout(box)
        lay.addWidget(self.method_view, 1)  # the list takes the room; the description its text's height
        lay.addWidget(self.method_description)
        return box

    def _build_params(self) -> QWidget:
        self.forms_stack = QStackedWidget()
        scroll = QScrollArea()
        scroll.setObjectName("paramScroll")
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.forms_stack)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        # Scrolls vertically only (on a laptop the form is taller than the room), never sideways.
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        bar_width = scroll.verticalScrollBar().sizeHint().width()
        scroll.setMinimumWidth(self.forms_stack.minimumSizeHint().width() + bar_width + 2)
        reset = QPushButton("Reset to defaults")
        reset.setToolTip("Put every parameter of this method back to its default")
        reset.clicked.connect(lambda: self.form().reset())
        self.dataset_label = QLabel("")
        self.dataset_label.setWordWrap(True)
        self.dataset_label.setObjectName("hint")
        self.train_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Train")
        self.train_button.setObjectName("primary")
        self.train_button.setToolTip("Train on the good training images, then evaluate on the test split (Ctrl+T)")
        self.train_button.clicked.connect(lambda: self.start_training())
        self.sweep_button = QPushButton("Sweep…")
        self.sweep_button.setToolTip("Train and compare several methods, parameter values and categories, "
                                     "each in its own worker process")
        self.sweep_button.clicked.connect(lambda: self.open_sweep_dialog())
        buttons = QHBoxLayout()
        buttons.addWidget(reset)
        buttons.addStretch(1)
        buttons.addWidget(self.sweep_button)
        buttons.addWidget(self.train_button)
        box = QGroupBox("Parameters")
        lay = QVBoxLayout(box)
        lay.addWidget(scroll, 1)
        lay.addLayout(buttons)
        return box

    def _build_progress(self) -> QWidget:
        self.progress = JobProgress()
        box = QGroupBox("Progress")
        lay = QVBoxLayout(box)
        lay.addWidget(self.progress)
        return box

    def _build_models(self) -> QWidget:
        self.models_box = ModelsBox(self.session)
        self.models_model = self.models_box.model
        self.models_box.inferTestRequested.connect(lambda: self.start_inference())
        self.models_box.inferFolderRequested.connect(self.start_inference)
        self.session.activeModelChanged.connect(lambda _m: self._update_enabled())
        self.session.modelsChanged.connect(self._update_enabled)
        return self.models_box

    # ------------------------------------------------------------------ methods and parameters
    def selected_method(self) -> str:
        index = self.method_view.currentIndex()
        cls = index.data(ObjectRole) if index.isValid() else None
        return cls.name if cls else DEFAULT_METHOD

    def select_method(self, name: str) -> None:
        row = self.methods_model.row_of(name)
        if row >= 0:
            self.method_view.setCurrentIndex(self.methods_model.index(row))

    def form(self, method: str | None = None) -> ParamForm:
        """The parameter form of ``method`` (default: the selected one), built on first use."""
        method = method or self.selected_method()
        if method not in self.forms:
            cls = self.methods_model.methods[self.methods_model.row_of(method)]
            form = ParamForm(cls.schema())
            self.forms[method] = form
            self.forms_stack.addWidget(form)
            self._restore_params(method)
        return self.forms[method]

    def _method_clicked(self, current: QModelIndex, _previous: QModelIndex) -> None:
        cls = current.data(ObjectRole) if current.isValid() else None
        if cls is None:
            return
        self.method_description.setText(f"<b>{cls.title}</b> <i>({cls.family})</i><br>{cls.description}")
        self.forms_stack.setCurrentWidget(self.form(cls.name))

    def _restore_params(self, method: str | None = None) -> None:
        workspace = self.session.workspace
        if workspace is None:
            return
        for name in [method] if method else list(self.forms):
            saved = workspace.get_setting(PARAMS_KEY.format(method=name))
            if isinstance(saved, dict):
                try:
                    self.forms[name].set_values(saved)
                except ValueError as exc:  # a value the current schema no longer accepts
                    log.info("ignoring saved %s parameters: %s", name, exc)

    # ------------------------------------------------------------------ training
    def start_training(self, method: str | None = None, params: dict | None = None) -> Worker | None:
        """Train ``method`` (default: selected) with ``params`` (default: the form) in a worker."""
        workspace, entry, dataset = self.session.workspace, self.session.dataset_entry, self.session.dataset
        if workspace is None or entry is None or dataset is None:
            errors.show_error(self, "Nothing to train on", "Import or select a dataset first (step 1, Ctrl+1).")
            return None
        if self.busy:
            return None
        method = method or self.selected_method()
        try:
            values = self.form(method).values() if params is None else params
        except ValueError as exc:
            errors.show_error(self, "Check the parameters", str(exc))
            return None
        workspace.set_setting(PARAMS_KEY.format(method=method), values)
        model_dir = workspace.new_model_dir(method)
        self._run = (workspace, workspace.start_run("train", dataset_id=entry.id))
        worker = Worker(train_evaluate_save, dataset, method, values, model_dir,
                        excluded=workspace.excluded_images(entry.id))  # the audit's exclusions
        worker.finished.connect(lambda outcome, e=entry, ws=workspace: self._on_trained(e, outcome, ws))
        worker.failed.connect(lambda msg, _d: self._finish_run("failed", msg))
        worker.cancelled.connect(lambda d=model_dir: self._on_training_cancelled(d))
        worker.ended.connect(self._update_enabled)
        cls = METHODS.get(method)
        title = f"Training {cls.title if cls else method} on {entry.name}"
        self.progress.attach(worker, title)
        self.job = self.session.jobs.start(worker, title)
        self._update_enabled()
        return worker

    def open_sweep_dialog(self) -> Worker | None:
        """Ask which methods, datasets and parameter values to sweep, then start it."""
        from workbench.gui.sweep_launcher import SweepLauncher
        from workbench.gui.widgets.sweep_dialog import SweepDialog

        if self.session.dataset_entry is None:
            errors.show_error(self, "Nothing to sweep", "Import or select a dataset first (step 1, Ctrl+1).")
            return None
        if self.sweeps is None:
            self.sweeps = SweepLauncher(self.session, self.progress, self)
        dialog = SweepDialog(self.sweeps.sibling_datasets(), self.session.dataset_entry, self)
        if dialog.exec() != SweepDialog.DialogCode.Accepted:
            return None
        return self.sweeps.start(dialog.chosen_datasets(), dialog.chosen_methods(), dialog.grid(),
                                 dialog.workers.value())

    def _on_trained(self, entry: DatasetEntry, outcome: TrainingOutcome, workspace: Workspace) -> None:
        self.last_outcome = outcome
        if workspace is not self.session.workspace or workspace.closed:
            # The user switched workspace as the job ended: its folder would be an orphan.
            shutil.rmtree(outcome.model_dir, ignore_errors=True)
            return
        model = workspace.add_model(entry.id, outcome.method, outcome.model_dir, outcome.params,
                                    outcome.metrics, outcome.fit_seconds)
        from workbench.core.run_record import sync_to_workspace

        sync_to_workspace(workspace, model.id, outcome.model_dir)  # the run records, also in the database
        auroc = outcome.metrics.get("image_auroc")
        held = f" ({outcome.n_holdout} more held out for good-score statistics)" if outcome.n_holdout else ""
        skipped = f" ({outcome.n_excluded} excluded image(s) skipped)" if outcome.n_excluded else ""
        self.progress.append_log(f"Saved {model.name}: fitted on {outcome.n_train} good images{held}{skipped}, fit "
                                 f"{outcome.fit_seconds:.1f} s" + (f", image AUROC {auroc:.3f}" if auroc is not None else ""))
        weak = weak_model_warning(auroc, None, outcome.method)
        if weak:
            self.progress.append_log(f"Warning: {weak}")
        self._finish_run("ok", f"model {model.id}")
        self.session.notify_models_changed()
        self.session.set_active_model(model)

    def _on_training_cancelled(self, model_dir: Path) -> None:
        shutil.rmtree(model_dir, ignore_errors=True)  # normally absent: saving is the last step
        self._finish_run("cancelled")

    def _finish_run(self, status: str, message: str = "") -> None:
        """Close the history row in the workspace the run was started in (if still open)."""
        run, self._run = self._run, None
        if run is None or run[0].closed:
            return
        try:
            run[0].finish_run(run[1], status, message)
        except ValueError as exc:
            log.warning("could not record the run: %s", exc)

    def cancel(self) -> None:
        self.progress.cancel()

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.running

    # ------------------------------------------------------------------ inference
    def start_inference(self, folder: str | Path | None = None, model: ModelEntry | None = None) -> Worker | None:
        """Score the test split (or every image under ``folder``) with the active model."""
        model = model or self.session.active_model
        dataset = self.session.dataset
        if model is None:
            errors.show_error(self, "No model", "Train a model or select one in the table first.")
            return None
        if self.busy:
            return None
        if folder is None:
            if dataset is None or not dataset.test:
                errors.show_error(self, "No test images", "The current dataset has no test split; choose a folder.")
                return None
            images: list[Path] | Path = [r.path for r in dataset.test]
            source = f"the test split of {self.session.dataset_entry.name if self.session.dataset_entry else dataset.name}"
        else:
            images, source = Path(folder), str(folder)
        on_screen = self.screen_policy(model) if self.screen_policy is not None else None
        policy, unsaved = on_screen if on_screen is not None else (None, False)
        worker = Worker(run_inference, model.path, images, source, policy=policy, unsaved=unsaved)
        worker.finished.connect(lambda summary, m=model: self._on_inferred(m, summary))
        worker.ended.connect(self._update_enabled)
        title = f"Inference with {model.name}"
        self.progress.attach(worker, title)
        self.job = self.session.jobs.start(worker, title)
        self._update_enabled()
        return worker

    def _on_inferred(self, model: ModelEntry, summary: InferenceSummary) -> None:
        self.last_inference = summary
        text = summary.text()
        self.models_box.summary.setText(text)
        self.progress.append_log(text)
        workspace = self.session.workspace
        if workspace is not None and any(m.id == model.id for m in workspace.models()):
            run = workspace.start_run("inference", model_id=model.id,
                                      dataset_id=model.dataset_id)
            workspace.finish_run(run, "ok", text.splitlines()[0])
        self.inferenceFinished.emit(summary)

    # ------------------------------------------------------------------ state
    @Slot(object, object)
    def _on_dataset_changed(self, entry: DatasetEntry | None, dataset: Dataset | None) -> None:
        if dataset is None or entry is None:
            self.dataset_label.setText("Import or select a dataset first (step 1).")
        else:
            n_def = sum(r.is_anomalous for r in dataset.test)
            self.dataset_label.setText(
                f"Trains on <b>{entry.name}</b>: {good_images_text(dataset)}; evaluates on "
                f"{len(dataset.test)} test images ({n_def} defective).")
        self.models_box.summary.setText("")
        self._update_enabled()

    def _update_enabled(self) -> None:
        ready = self.session.dataset is not None and self.session.workspace is not None
        busy = self.busy
        self.train_button.setEnabled(ready and not busy)
        self.train_button.setToolTip("Train on the good training images, then evaluate on the test split (Ctrl+T)"
                                     if ready else "Import or select a dataset first (step 1)")
        self.models_box.set_enabled_actions(busy)
