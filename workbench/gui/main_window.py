"""The main window: a left-to-right workflow (Dataset -> Method & Training -> Threshold ->
Review -> Export -> Live), the workspace menus, shortcuts and a status bar.

It owns the :class:`JobRunner` and the :class:`Session`; panels get the session and never
reference each other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings, QSize, Qt, QUrl, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QApplication, QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMainWindow, QMessageBox,
    QStackedWidget, QStyle, QWidget,
)

import workbench
from workbench.core.workspace import Workspace, WorkspaceError
from workbench.gui import recent
from workbench.gui.app import app_icon
from workbench.gui.device import device_description
from workbench.gui.settings import load_settings
from workbench.gui.panels.dataset_panel import DatasetPanel
from workbench.gui.panels.export_panel import ExportPanel
from workbench.gui.panels.live_panel import LivePanel
from workbench.gui.panels.review_panel import ReviewPanel
from workbench.gui.panels.threshold_panel import ThresholdPanel
from workbench.gui.panels.training_panel import TrainingPanel
from workbench.gui.pipelines import import_datasets
from workbench.gui.sample import sample_data_root, sample_workspace_dir
from workbench.gui.session import Session
from workbench.gui.widgets import errors
from workbench.gui.widgets.first_run import FirstRunPage
from workbench.gui.workers import JobRunner, Worker

log = logging.getLogger(__name__)

LATER = "coming in a later release"
# Room for the window frame and title bar, which geometry() does not include.
FRAME_ALLOWANCE = QSize(16, 38)


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    icon: QStyle.StandardPixmap
    available: bool


STEPS = (
    Step("dataset", "Dataset", QStyle.StandardPixmap.SP_DirIcon, True),
    Step("training", "Method & Training", QStyle.StandardPixmap.SP_ComputerIcon, True),
    Step("threshold", "Threshold", QStyle.StandardPixmap.SP_FileDialogDetailedView, True),
    Step("review", "Review", QStyle.StandardPixmap.SP_FileDialogContentsView, True),
    Step("export", "Export", QStyle.StandardPixmap.SP_DialogSaveButton, True),
    Step("live", "Live", QStyle.StandardPixmap.SP_MediaPlay, True),
)


class StepNavigator(QListWidget):
    """The step list. Typing does not search it: "2" pressed to mark an image NG must never
    jump to step 2 (steps are changed by click, arrow keys or Ctrl+1..5)."""

    def keyboardSearch(self, search: str) -> None:  # noqa: N802 (Qt API)
        pass


class MainWindow(QMainWindow):
    """``settings`` defaults to the application's QSettings (tests pass their own file)."""

    def __init__(self, settings: QSettings | None = None, restore_last: bool = True) -> None:
        super().__init__()
        self.settings = settings or QSettings()
        self.setWindowTitle("Anomaly Inspection Workbench")
        self.setWindowIcon(app_icon())
        # compute jobs take the threads and device of the Settings dialog, which writes this store
        self.jobs = JobRunner(dialog_parent=self, parent=self, settings=lambda: load_settings(self.settings))
        self.session = Session(self.jobs, self)
        self.sample_worker: Worker | None = None

        self.first_run = FirstRunPage()
        self.dataset_panel = DatasetPanel(self.session)
        self.training_panel = TrainingPanel(self.session)
        self.threshold_panel = ThresholdPanel(self.session)
        self.review_panel = ReviewPanel(self.session)
        self.export_panel = ExportPanel(self.session)
        self.live_panel = LivePanel()
        self.stack = QStackedWidget()
        for page in (self.first_run, self.dataset_panel, self.training_panel, self.threshold_panel,
                     self.review_panel, self.export_panel, self.live_panel):
            self.stack.addWidget(page)
        self.pages: dict[str, QWidget] = {"dataset": self.dataset_panel, "training": self.training_panel,
                                          "threshold": self.threshold_panel, "review": self.review_panel,
                                          "export": self.export_panel, "live": self.live_panel}
        self._connect_live()
        # Reviewed labels are the calibration's ground truth; a saved calibration moves the outlines.
        # One verdict updates the Threshold step incrementally; bulk changes (imports) re-evaluate.
        self.review_panel.labelEdited.connect(self.threshold_panel.on_label_edited)
        self.review_panel.labelsChanged.connect(self.threshold_panel.on_labels_changed)
        self.threshold_panel.calibrationSaved.connect(lambda _name: self.session.modelsChanged.emit())
        # Review decides with the Threshold step's policy as it is on screen, marked while unsaved.
        self.threshold_panel.policyChanged.connect(self._on_screen_policy)
        self.review_panel.predictionsShown.connect(
            lambda: self.threshold_panel.unsaved and self._on_screen_policy(self.threshold_panel.policy(), True))
        # Folder inference decides with the Threshold step's policy as on screen; its results open in Review.
        self.training_panel.screen_policy = self._screen_policy_for
        self.training_panel.inferenceFinished.connect(self._show_inference)
        self.review_panel.savePolicyRequested.connect(lambda: self.threshold_panel.save_calibration())
        self.review_panel.revertPolicyRequested.connect(self.threshold_panel.revert_policy)

        self.navigator = self._build_navigator()
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.navigator)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self._build_actions()
        self._build_menus()
        self._build_status_bar()

        self.first_run.openSample.connect(self.open_sample_workspace)
        self.first_run.newWorkspace.connect(self.new_workspace)
        self.first_run.openWorkspace.connect(self.choose_workspace)
        self.session.workspaceChanged.connect(self._on_workspace_changed)
        self.session.activeModelChanged.connect(self._on_active_model_changed)
        self.jobs.activeCountChanged.connect(self._on_jobs_changed)

        self._restore_geometry()
        self._on_workspace_changed(None)
        last = recent.last_workspace(self.settings) if restore_last else None
        if last and Path(last).is_dir():
            self.open_workspace(last, quiet=True)

    # ------------------------------------------------------------------ building
    def _build_navigator(self) -> QListWidget:
        nav = StepNavigator()
        nav.setObjectName("navigator")
        nav.setIconSize(QSize(22, 22))
        # As wide as the longest step title needs (not a fixed 236 px): every pixel counts on a laptop.
        nav.ensurePolished()  # the style sheet's larger navigator font, not the default one
        widest = max(nav.fontMetrics().horizontalAdvance(f"{i}  {s.title}") for i, s in enumerate(STEPS, 1))
        nav.setFixedWidth(widest + 22 + 52)
        for i, step in enumerate(STEPS, start=1):
            item = QListWidgetItem(self.style().standardIcon(step.icon), f"{i}  {step.title}")
            item.setData(Qt.ItemDataRole.UserRole, step.key)
            item.setSizeHint(QSize(widest + 22 + 30, 44))
            if step.available:
                item.setToolTip(f"{step.title} (Ctrl+{i})")
            else:
                item.setFlags(Qt.ItemFlag.NoItemFlags)
                item.setToolTip(f"{step.title}: {LATER}")
            nav.addItem(item)
        nav.currentRowChanged.connect(self._on_step_row)
        return nav

    def _action(self, text: str, slot, shortcut: QKeySequence | str | None = None,
                icon: QStyle.StandardPixmap | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)  # shortcuts work whatever page has the focus
        return action

    def _on_screen_policy(self, policy, unsaved: bool) -> None:
        """Hand the Threshold step's policy to Review when both show the same model."""
        data, preds = self.threshold_panel.data, self.review_panel.predictions
        if data is None or preds is None or data.model_dir is None or Path(data.model_dir) != Path(preds.model_dir):
            return
        self.review_panel.set_screen_policy(policy, unsaved)

    def _screen_policy_for(self, model):
        """(policy, unsaved) of the Threshold step when it shows ``model``; None otherwise (the
        model's saved policy decides)."""
        data, policy = self.threshold_panel.data, self.threshold_panel.policy()
        if data is None or policy is None or data.model_dir is None or Path(data.model_dir) != Path(model.path):
            return None
        return policy, self.threshold_panel.unsaved

    def _show_inference(self, summary) -> None:
        self.review_panel.show_folder_run(summary)
        self.go_to_step([step.key for step in STEPS].index("review"))

    def _connect_live(self) -> None:
        """Live scores with the active model, logs into the workspace, opens strip images in Review."""
        def on_model(model) -> None:
            if not self.live_panel.runner.running:
                self.live_panel.set_model(model.path if model else None, f"{model.name}" if model else "")

        def on_workspace(workspace) -> None:
            self.live_panel.shutdown()
            self.live_panel.set_log_root(workspace.path / "live" if workspace is not None else None)

        self.session.activeModelChanged.connect(on_model)
        self.session.workspaceChanged.connect(on_workspace)
        self.live_panel.open_handler = self._open_live_result
        self.live_panel.fullScreenToggled.connect(
            lambda full: (self.navigator.setVisible(not full), self.menuBar().setVisible(not full),
                          self.statusBar().setVisible(not full)))

    def _open_live_result(self, result) -> None:
        """A live image of the current dataset opens in Review; any other in a closer-look dialog."""
        from workbench.core.labels import label_key

        dataset = self.session.dataset
        if result.path is not None and dataset is not None:
            key = label_key(dataset.root, result.path)
            if self.review_panel.model.row_of(key) >= 0 and self.go_to_step(3) and self.review_panel.select_key(key):
                return
        self.live_panel.show_result_dialog(result)

    def _build_actions(self) -> None:
        sp = QStyle.StandardPixmap
        self.act_new = self._action("&New workspace…", self.new_workspace, QKeySequence.StandardKey.New,
                                    sp.SP_FileDialogNewFolder, "Create a workspace in a new, empty folder")
        self.act_open = self._action("&Open workspace…", self.choose_workspace, QKeySequence.StandardKey.Open,
                                     sp.SP_DialogOpenButton, "Open an existing workspace folder")
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_sample = self._action("Open &sample workspace", self.open_sample_workspace, None,
                                       sp.SP_MediaPlay, "Open a workspace with the shipped sample data")
        self.act_about = self._action("&About", self.show_about)
        self.act_import = self._action("&Import dataset…", self._import_shortcut, "Ctrl+I",
                                       sp.SP_DirOpenIcon, "Choose a dataset folder to import")
        self.act_train = self._action("&Train", self._train_shortcut, "Ctrl+T", sp.SP_MediaPlay,
                                      "Train the selected method on the current dataset")
        self.act_cancel = self._action("&Cancel job", self.cancel_current_job, Qt.Key.Key_Escape,
                                       sp.SP_BrowserStop, "Cancel the running job")
        self.act_export = self._action("&Export…", lambda: self.go_to_step(4), None, sp.SP_DialogSaveButton,
                                       "Export the model package, labels and the inspection report")
        self.step_actions = [self._action(f"Go to step {i}", lambda i=i: self.go_to_step(i - 1), f"Ctrl+{i}")
                             for i in range(1, len(STEPS) + 1)]
        self.act_settings = self._action("&Settings…", self.show_settings, "Ctrl+,", None,
                                         "Compute device, CPU threads and theme")
        self.act_shortcuts = self._action("&Keyboard shortcuts", self.show_shortcuts, "F1", None,
                                          "Every key of the window and of each step")
        self.act_log_file = self._action("Show &log file", self.show_log_file, None, None,
                                         "Open the log file (warnings and error details for a support request)")

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.act_new)
        file_menu.addAction(self.act_open)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.act_import)
        file_menu.addAction(self.act_export)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        run_menu = self.menuBar().addMenu("&Run")
        run_menu.addAction(self.act_train)
        run_menu.addAction(self.act_cancel)
        go_menu = self.menuBar().addMenu("&Go")
        for step, action in zip(STEPS, self.step_actions):
            action.setText(step.title.replace("&", "&&"))
            if step.available:  # later steps keep their shortcut (it explains) but stay off the menu
                go_menu.addAction(action)
        tools_menu = self.menuBar().addMenu("&Tools")
        tools_menu.addAction(self.act_settings)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self.act_sample)
        help_menu.addSeparator()
        help_menu.addAction(self.act_shortcuts)
        help_menu.addAction(self.act_log_file)
        help_menu.addSeparator()
        help_menu.addAction(self.act_about)
        self._fill_recent_menu()

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.device_label = QLabel(device_description(load_settings(self.settings)))
        self.device_label.setToolTip("Where training and inference run")
        self.model_label = QLabel("No active model")
        self.jobs_label = QLabel("")
        for label in (self.model_label, self.jobs_label, self.device_label):
            label.setObjectName("statusField")
            bar.addPermanentWidget(label)
        self._on_jobs_changed(0)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        paths = recent.recent_workspaces(self.settings)
        for path in paths:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_workspace(p))
        if not paths:
            empty = self.recent_menu.addAction("(none yet)")
            empty.setEnabled(False)

    # ------------------------------------------------------------------ workspaces
    def new_workspace(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a new, empty folder for the workspace",
                                                  str(Path.home()))
        if folder:
            self.open_workspace(folder, create=True)

    def choose_workspace(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a workspace folder", str(Path.home()))
        if folder:
            self.open_workspace(folder)

    def open_workspace(self, path: str | Path, create: bool = False, quiet: bool = False) -> Workspace | None:
        """Open (or create) the workspace at ``path`` and show its data. Errors go to a dialog;
        ``quiet`` (reopening the last workspace at start-up) only logs them."""
        if self.jobs.active_count:
            if not self.confirm("Jobs are running", "Cancel the running jobs and switch workspace?"):
                return None
            self._stop_jobs()
        try:
            workspace = Workspace.create(path) if create else Workspace.open(path)
        except WorkspaceError as exc:
            if quiet:
                log.warning("not reopening the last workspace: %s", exc)
                recent.remove_recent(self.settings, path)
            else:
                errors.show_error(self, "Cannot open the workspace", str(exc))
            return None
        recent.add_recent(self.settings, workspace.path)
        self.session.set_workspace(workspace)
        return workspace

    def open_sample_workspace(self) -> Worker | None:
        """One click: open (or create) the sample workspace and import every sample category
        not yet in it. Importing runs in a worker; the datasets are registered when it ends."""
        root = sample_data_root()
        if not root.is_dir():
            errors.show_error(self, "Sample data not found",
                              f"The sample images are not at {root}. Reinstall the workbench, or "
                              "generate them with 'python -m workbench.core.data.synthetic --out workbench/sample_data'.")
            return None
        target = sample_workspace_dir()
        try:
            workspace = Workspace.open_or_create(target)
        except WorkspaceError as exc:
            errors.show_error(self, "Cannot open the sample workspace", str(exc))
            return None
        recent.add_recent(self.settings, workspace.path)
        self.session.set_workspace(workspace)
        from workbench.core.data import DatasetError, list_categories

        try:
            categories = list_categories(root)
        except DatasetError as exc:
            errors.show_error(self, "Sample data is damaged", str(exc))
            return None
        have = {(e.root.resolve(), e.category) for e in workspace.datasets()}
        missing = [c for c in categories if (root.resolve(), c) not in have]
        if not missing:
            self.go_to_step(0)
            self._install_sample_models(workspace, root)
            return None
        worker = Worker(import_datasets, root, "auto", missing)
        worker.finished.connect(lambda outcome, ws=workspace: self.dataset_panel._on_imported(outcome, ws))
        worker.finished.connect(lambda _outcome, ws=workspace: self._install_sample_models(ws, root))
        self.sample_worker = self.jobs.start(worker, "Import sample data")
        self.go_to_step(0)
        return worker

    def _install_sample_models(self, workspace: Workspace, root: Path) -> None:
        """Register the shipped pre-trained sample models, so Threshold and Review work at once
        (no training); then show the Threshold step of the current sample dataset."""
        if workspace is not self.session.workspace or workspace.closed:
            return
        from workbench.core.sample_models import install_into_workspace

        try:
            added = install_into_workspace(workspace, root)
        except (OSError, ValueError) as exc:  # damaged install: the sample still works with training
            log.warning("sample models not installed: %s", exc)
            return
        if not added:
            return
        self.session.notify_models_changed()
        current = self.session.dataset_entry
        model = next((m for m in added if current is not None and m.dataset_id == current.id), None)
        if model is not None:
            self.session.set_active_model(model)
            self.go_to_step(2)

    @Slot(object)
    def _on_workspace_changed(self, workspace: Workspace | None) -> None:
        has = workspace is not None
        for row, step in enumerate(STEPS):
            item = self.navigator.item(row)
            if step.available:
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable if has
                              else Qt.ItemFlag.NoItemFlags)
        for action in (self.act_import, self.act_train, self.act_export):
            action.setEnabled(has)
        if has:
            self.setWindowTitle(f"{workspace.path.name} – Anomaly Inspection Workbench")
            self.statusBar().showMessage(f"Workspace {workspace.path}", 5000)
            self.go_to_step(0)
        else:
            self.setWindowTitle("Anomaly Inspection Workbench")
            self.navigator.setCurrentRow(-1)
            self.stack.setCurrentWidget(self.first_run)

    # ------------------------------------------------------------------ steps
    def go_to_step(self, index: int) -> bool:
        """Show step ``index`` (0-based); False (with a status message) when not available."""
        if not 0 <= index < len(STEPS):
            return False
        step = STEPS[index]
        if not step.available:
            self.statusBar().showMessage(f"{step.title}: {LATER}", 4000)
            return False
        if self.session.workspace is None:
            self.statusBar().showMessage("Open or create a workspace first", 4000)
            return False
        self.navigator.setCurrentRow(index)
        return True

    def _on_step_row(self, row: int) -> None:
        if 0 <= row < len(STEPS) and STEPS[row].key in self.pages:
            self.stack.setCurrentWidget(self.pages[STEPS[row].key])

    def current_step(self) -> str | None:
        widget = self.stack.currentWidget()
        return next((k for k, w in self.pages.items() if w is widget), None)

    def _import_shortcut(self) -> None:
        if self.go_to_step(0):
            self.dataset_panel.import_box.choose_folder()

    def _train_shortcut(self) -> None:
        if self.go_to_step(1):
            self.training_panel.start_training()

    def cancel_current_job(self) -> None:
        """Esc: cancel the most recently started job that is still running."""
        running = [w for w in self.jobs.workers if w.running]
        if not running:
            return
        job = running[-1]
        if job is self.training_panel.job:
            self.training_panel.cancel()
        else:
            job.cancel()
        self.statusBar().showMessage(f"Cancelling {job.title}…", 4000)

    # ------------------------------------------------------------------ status bar
    def _on_active_model_changed(self, model) -> None:
        self.model_label.setText(f"Model: {model.name}" if model else "No active model")

    def _on_jobs_changed(self, count: int) -> None:
        self.jobs_label.setText("No background jobs" if count == 0 else
                                f"{count} background job{'s' if count > 1 else ''} running")

    # ------------------------------------------------------------------ misc
    def show_about(self) -> None:
        QMessageBox.about(self, "About Anomaly Inspection Workbench",
                          f"<b>Anomaly Inspection Workbench</b> {workbench.__version__}<br>"
                          "Unsupervised visual inspection: train on good parts, find defects.<br>"
                          f"Compute: {device_description(load_settings(self.settings))}")

    def show_settings(self) -> bool:
        """Tools > Settings: saved through :mod:`workbench.gui.settings`; True when OK was pressed."""
        from workbench.gui.widgets.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        accepted = self._exec(dialog)
        if accepted:
            self.device_label.setText(device_description(load_settings(self.settings)))
        return accepted

    def shortcut_entries(self):
        """Every key of this window, read from its live actions and shortcuts."""
        from workbench.gui.widgets.shortcuts_dialog import collect_shortcuts

        titles = {step.key: step.title for step in STEPS}
        return collect_shortcuts(self, {page: titles[key] for key, page in self.pages.items()})

    def show_shortcuts(self) -> None:
        from workbench.gui.widgets.shortcuts_dialog import ShortcutsDialog

        self._exec(ShortcutsDialog(self.shortcut_entries(), self))

    def _exec(self, dialog) -> bool:
        """Run a modal dialog (a method so tests can answer it without blocking)."""
        return dialog.exec() == dialog.DialogCode.Accepted

    def log_file(self) -> Path | None:
        """The log file, set up now if the app started without one (flushed, so it is complete)."""
        from workbench.gui.logfile import current_log_file, flush_log_file, setup_log_file

        path = current_log_file() or setup_log_file()
        flush_log_file()
        return path

    def show_log_file(self) -> Path | None:
        """Help > Show log file: open it in the system's text viewer (its folder if that fails)."""
        path = self.log_file()
        if path is None or not path.is_file():
            errors.show_error(self, "No log file", "The log folder cannot be written; nothing is logged to a file.")
            return None
        if not (QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))
                or QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))):
            QMessageBox.information(self, "Log file", f"The log file is {path}")
        return path

    def confirm(self, title: str, question: str) -> bool:
        """Yes/No question (a method so tests can answer it without a modal dialog)."""
        return QMessageBox.question(self, title, question) == QMessageBox.StandardButton.Yes

    def _stop_jobs(self) -> None:
        """Cancel and wait for every job, then deliver their last signals while the
        workspace is still open, so cancelled runs are recorded as such."""
        self.jobs.shutdown()
        QApplication.processEvents()

    def _restore_geometry(self) -> None:
        """The saved geometry when it still fits the screen the window opens on (a geometry saved
        on a big monitor would put a laptop's window partly off-screen); else a default size
        clipped to that screen's available area."""
        geometry = self.settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry) or not self._fits_screen():
            self.setWindowState(Qt.WindowState.WindowNoState)
            self.resize(self._default_size())
            area = self._available()
            if area is not None:
                self.move(area.topLeft())
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)

    def _available(self):
        screen = self.screen() or QApplication.primaryScreen()
        return screen.availableGeometry() if screen is not None else None

    def _default_size(self) -> QSize:
        """1360 x 860 where there is room; on a smaller screen its available area less the frame."""
        area = self._available()
        if area is None:
            return QSize(1360, 860)
        return QSize(min(1360, area.width() - FRAME_ALLOWANCE.width()),
                     min(860, area.height() - FRAME_ALLOWANCE.height()))

    def _fits_screen(self) -> bool:
        area = self._available()
        if area is None or self.isMaximized() or self.isFullScreen():
            return True
        rect = self.geometry().adjusted(0, -FRAME_ALLOWANCE.height(), 0, 0)  # include the title bar
        return area.contains(rect)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        if self.jobs.active_count and not self.confirm(
                "Jobs are running", "A job is still running. Cancel it and quit?"):
            event.ignore()
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()
        self.review_panel.shutdown()
        self.live_panel.shutdown()
        self._stop_jobs()
        self.dataset_panel.images_model.loader.clear()
        self.session.close()
        super().closeEvent(event)
