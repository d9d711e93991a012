"""A folder inference run shown in the Review step: one row per image (score, OK / REVIEW / NG,
regions, defect area) and the heat-map overlay the core wrote for it, with the ``scores.csv``
beside them.

Everything shown comes from the run's :class:`~workbench.core.workflows.FolderPrediction`
(the core's CSV rows and overlay files); this widget computes nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, QUrl, Signal
from PySide6.QtGui import QBrush, QColor, QDesktopServices, QPixmap, QResizeEvent
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton, QSizePolicy,
                               QSplitter, QTableView, QVBoxLayout, QWidget)

COLUMNS = ("Image", "Score", "Decision", "Regions", "Area px")
DECISION_COLORS = {"OK": "#dcfce7", "REVIEW": "#fef3c7", "NG": "#fee2e2", "error": "#e5e7eb"}
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


class FolderRunModel(QAbstractTableModel):
    """Rows of one run (``summary``: a GUI :class:`~workbench.gui.pipelines.InferenceSummary`)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.summary: Any = None

    def set_summary(self, summary: Any) -> None:
        self.beginResetModel()
        self.summary = summary
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() or self.summary is None else len(self.summary.paths)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def row(self, row: int) -> dict[str, str]:
        return self.summary.rows[row]

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.summary is None:
            return None
        row, col = self.row(index.row()), index.column()
        score = float(self.summary.scores[index.row()])
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return self.summary.paths[index.row()].name
            if col == 1:
                return "–" if math.isnan(score) else f"{score:.4g}"
            return (row["decision"], row["regions"], row["defect_area_px"])[col - 2] if col > 1 else None
        if role == SORT_ROLE:
            if col == 1:
                return -math.inf if math.isnan(score) else score
            if col in (3, 4):
                return int(row[("regions", "defect_area_px")[col - 3]] or 0)
            return self.data(index)
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(self.summary.paths[index.row()]) + (f"\n{row['error']}" if row.get("error") else "")
        if role == Qt.ItemDataRole.BackgroundRole and col == 2:
            color = DECISION_COLORS.get(row["decision"])
            return QBrush(QColor(color)) if color else None
        return None


class FolderResultsView(QWidget):
    """Run summary, per-image table (sorted by score, highest first) and the selected image's
    overlay. ``closed()`` when the user goes back to the dataset's review."""

    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary: Any = None
        self.title = QLabel("")
        self.title.setObjectName("folderRunTitle")
        self.title.setWordWrap(True)
        self.csv_label = QLabel("")
        self.csv_label.setObjectName("hint")
        self.csv_label.setWordWrap(True)
        self.csv_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open results folder")
        self.open_button.setToolTip("Show scores.csv and the overlay PNGs in the file manager")
        self.open_button.clicked.connect(self.open_folder)
        self.back_button = QPushButton("Back to dataset review")
        self.back_button.clicked.connect(self.closed.emit)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.open_button)
        top.addWidget(self.back_button)

        self.model = FolderRunModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setObjectName("folderRunTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # the name gets what is left
        metrics, bold = self.table.fontMetrics(), header.fontMetrics()
        for col, sample in ((1, "0000.000"), (2, "REVIEW"), (3, "000"), (4, "0000000")):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
            header.resizeSection(col, max(metrics.horizontalAdvance(sample), bold.horizontalAdvance(COLUMNS[col])) + 24)
        self.table.setMinimumWidth(sum(header.sectionSize(c) for c in range(1, 5)) + 140)
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _prev: self._show_row(cur))

        self.image = QLabel("")
        self.image.setObjectName("folderRunImage")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(240, 200)
        self.image.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)  # no resize loop
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.caption.setObjectName("hint")
        viewer = QWidget()
        lay = QVBoxLayout(viewer)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.image, 1)
        lay.addWidget(self.caption)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        split.addWidget(self.table)
        split.addWidget(viewer)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        self._pixmap: QPixmap | None = None

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.csv_label)
        layout.addWidget(split, 1)

    def set_summary(self, summary: Any) -> None:
        """Show one finished run (an :class:`~workbench.gui.pipelines.InferenceSummary`)."""
        self.summary = summary
        self.model.set_summary(summary)
        n = len(summary.paths)
        counts = {d: summary.decisions.count(d) for d in ("OK", "REVIEW", "NG", "error")}
        parts = [f"{counts['NG']} NG"] + ([f"{counts['REVIEW']} REVIEW"] if summary.policy.has_band else []) \
            + [f"{counts['OK']} OK"] + ([f"{counts['error']} error"] if counts["error"] else [])
        self.title.setText(f"<b>Folder run</b>: {n} image(s) from {summary.source} · {' / '.join(parts)}<br>"
                           f"Decided with {summary.policy_text()}.")
        csv = summary.csv_path
        self.csv_label.setText(f"Decisions per image: {csv}" if csv is not None else "")
        self.open_button.setEnabled(csv is not None)
        self.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)
        if n:
            self.table.selectRow(0)
            self._show_row(self.proxy.index(0, 0))
        self.table.setFocus(Qt.FocusReason.OtherFocusReason)

    def current_row(self) -> int:
        """The source row of the selected image (-1: none)."""
        index = self.proxy.mapToSource(self.table.currentIndex())
        return index.row() if index.isValid() else -1

    def _show_row(self, proxy_index: QModelIndex) -> None:
        source = self.proxy.mapToSource(proxy_index)
        if not source.isValid() or self.summary is None:
            self._pixmap = None
            self.image.clear()
            self.caption.setText("")
            return
        i = source.row()
        row = self.summary.rows[i]
        overlay = self.summary.overlays[i] if i < len(self.summary.overlays) else None
        path: Path = overlay if overlay is not None else self.summary.paths[i]
        pixmap = QPixmap(str(path))
        self._pixmap = None if pixmap.isNull() else pixmap
        self._fit()
        what = "heat-map overlay" if overlay is not None else "image (no overlay written)"
        self.caption.setText(f"{self.summary.paths[i].name}: {row['decision']} (score {row['score']}, "
                             f"{row['regions'] or 0} region(s), {row['defect_area_px'] or 0} px) · {what}"
                             + (f" · {row['note']}" if row.get("note") else ""))

    def _fit(self) -> None:
        if self._pixmap is None:
            self.image.setText("The image cannot be shown.")
            return
        size = self.image.size()
        self.image.setPixmap(self._pixmap.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                                 Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        if self._pixmap is not None:
            self._fit()

    def open_folder(self) -> None:
        if self.summary is not None and self.summary.csv_path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(self.summary.csv_path).parent)))
