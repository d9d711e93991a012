"""The parity check's table: per image, the torch and onnxruntime scores and decisions."""

from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from workbench.core.export.deploy import ParityResult

COLUMNS = ("Image", "torch score", "ONNX score", "torch", "ONNX")
MISMATCH = QColor("#b91c1c")


class ParityTable(QTableWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            self.horizontalHeader().setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.setMinimumHeight(150)

    def show_result(self, result: ParityResult | None) -> None:
        self.setRowCount(0 if result is None else len(result.paths))
        if result is None:
            return
        for i, path in enumerate(result.paths):
            same = result.torch_decisions[i] == result.onnx_decisions[i]
            cells = (f"{path.parent.name}/{path.name}", f"{result.torch_scores[i]:.5g}", f"{result.onnx_scores[i]:.5g}",
                     result.torch_decisions[i] or "-", result.onnx_decisions[i] or "-")
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(str(path))
                if not same:
                    item.setForeground(MISMATCH)
                self.setItem(i, j, item)
