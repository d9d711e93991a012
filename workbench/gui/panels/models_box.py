"""The model comparison table of the current dataset, with its actions.

Selecting a row makes that model the active one (status bar, inference, later steps).
Inference is requested by signal, because the training panel owns the one compute job
slot and its progress display.
"""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QFileDialog, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QMessageBox,
    QPushButton, QStyle, QTableView, QVBoxLayout, QWidget,
)

from workbench.core.workspace import ModelEntry
from workbench.gui.qtmodels import ModelTableModel
from workbench.gui.qtmodels.roles import ObjectRole, SortRole
from workbench.gui.session import Session


VISIBLE_ROWS = 4  # the table always shows at least this many models


class SummaryLabel(QLabel):
    """The last inference's summary; hidden while empty, so it takes no row on a laptop screen."""

    def setText(self, text: str) -> None:  # noqa: N802 (Qt API)
        super().setText(text)
        self.setVisible(bool(text))


class ModelsBox(QGroupBox):
    """Emits ``inferTestRequested()`` and ``inferFolderRequested(folder)``."""

    inferTestRequested = Signal()
    inferFolderRequested = Signal(str)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__("Models of this dataset (select one to make it active; best values in bold)", parent)
        self.session = session
        self.model = ModelTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SortRole)

        self.view = QTableView()
        self.view.setObjectName("modelTable")
        self.view.setModel(self.proxy)
        self.view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.view.setSortingEnabled(True)  # training order until a header is clicked
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setAlternatingRowColors(True)
        self.view.verticalHeader().setVisible(False)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.view.selectionModel().currentRowChanged.connect(self._row_clicked)
        self.view.setMinimumHeight(self.table_height(VISIBLE_ROWS))

        icon = self.style().standardIcon
        self.infer_test_button = QPushButton(icon(QStyle.StandardPixmap.SP_MediaSeekForward), "Run inference on test split")
        self.infer_test_button.clicked.connect(self.inferTestRequested)
        self.infer_folder_button = QPushButton(icon(QStyle.StandardPixmap.SP_DirOpenIcon), "Run inference on folder…")
        self.infer_folder_button.clicked.connect(self._choose_folder)
        self.record_button = QPushButton(icon(QStyle.StandardPixmap.SP_FileDialogDetailedView), "Run record…")
        self.record_button.setToolTip("What produced this model: configuration, seed, training files with hashes, "
                                      "package versions, device, timings, metrics of every run")
        self.record_button.clicked.connect(lambda: self.show_run_records())
        self.delete_button = QPushButton(icon(QStyle.StandardPixmap.SP_TrashIcon), "Delete model")
        self.delete_button.clicked.connect(self.delete_active)
        self.summary = SummaryLabel("")
        self.summary.setWordWrap(True)
        self.summary.setObjectName("hint")
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setText("")  # hidden until an inference reports
        buttons = QHBoxLayout()
        buttons.addWidget(self.infer_test_button)
        buttons.addWidget(self.infer_folder_button)
        buttons.addStretch(1)
        buttons.addWidget(self.record_button)
        buttons.addWidget(self.delete_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.view, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.summary)

        session.modelsChanged.connect(self.refresh)
        session.activeModelChanged.connect(self._show_active)

    def table_height(self, rows: int) -> int:
        """Height of the table showing its header and ``rows`` rows (without scrolling)."""
        self.view.ensurePolished()
        header = self.view.horizontalHeader().sizeHint().height()
        return header + rows * self.view.verticalHeader().defaultSectionSize() + 2 * self.view.frameWidth() + 2

    def refresh(self) -> None:
        self.model.set_entries(self.session.models())
        self._show_active(self.session.active_model)

    def set_enabled_actions(self, busy: bool) -> None:
        has_model = self.session.active_model is not None
        dataset = self.session.dataset
        self.infer_test_button.setEnabled(has_model and not busy and bool(dataset and dataset.test))
        self.infer_folder_button.setEnabled(has_model and not busy)
        self.delete_button.setEnabled(has_model and not busy)
        self.record_button.setEnabled(has_model)

    def _show_active(self, model: ModelEntry | None) -> None:
        """Reflect the session's active model in the table without re-triggering a change."""
        self.model.set_active(model.id if model else None)
        row = self.model.row_of(model.id) if model else -1
        sel = self.view.selectionModel()
        sel.blockSignals(True)
        if row >= 0:
            index = self.proxy.mapFromSource(self.model.index(row, 0))
            sel.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                | QItemSelectionModel.SelectionFlag.Rows)
            self.view.scrollTo(index)  # a newly trained model is never hidden below the fold
        else:
            sel.clearSelection()
        sel.blockSignals(False)
        self.view.viewport().update()

    def _row_clicked(self, current: QModelIndex, _previous: QModelIndex) -> None:
        entry = current.data(ObjectRole) if current.isValid() else None
        if entry is not None and (self.session.active_model is None or entry.id != self.session.active_model.id):
            self.session.set_active_model(entry)

    def show_run_records(self, modal: bool = True):
        """The active model's run records in a dialog (returned; shown modally unless told not to)."""
        from workbench.gui.widgets.run_record_dialog import RunRecordDialog

        model = self.session.active_model
        if model is None or not model.exists:
            return None
        dialog = RunRecordDialog(model.path, model.name, self)
        if modal:
            dialog.exec()
        else:
            dialog.show()
        return dialog

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of images to score")
        if folder:
            self.inferFolderRequested.emit(folder)

    def delete_active(self) -> None:
        model, workspace = self.session.active_model, self.session.workspace
        if model is None or workspace is None:
            return
        answer = QMessageBox.question(self, "Delete model",
                                      f"Delete '{model.name}' and its files? This cannot be undone.")
        if answer != QMessageBox.StandardButton.Yes:
            return
        workspace.delete_model(model.id)
        self.session.set_active_model(None)
        self.session.notify_models_changed()
