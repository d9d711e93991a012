"""A strip of the last NG and REVIEW images of a live session; clicking one opens it."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QWidget

from workbench.gui.imaging import fit_within, rgb_to_qimage
from workbench.gui.widgets.verdict_banner import VERDICT_STYLE

THUMB = 96


class LiveStrip(QListWidget):
    """Newest first, at most ``keep`` items (older ones fall off: memory stays flat)."""

    resultClicked = Signal(object)  # LiveResult

    def __init__(self, keep: int = 12, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.keep = keep
        self.setObjectName("liveStrip")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setFixedHeight(THUMB + 44)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setToolTip("The last NG and REVIEW parts; click one to look at it closely")
        self.itemClicked.connect(lambda item: self.resultClicked.emit(item.data(Qt.ItemDataRole.UserRole)))

    def add_result(self, result) -> None:
        rgb = result.view if result.view is not None else result.image
        icon = QIcon(QPixmap.fromImage(rgb_to_qimage(fit_within(rgb, THUMB)))) if rgb is not None else QIcon()
        name = result.name.replace("\\", "/").rsplit("/", 1)[-1]
        item = QListWidgetItem(icon, f"{result.verdict} {name}")
        item.setData(Qt.ItemDataRole.UserRole, result)
        item.setForeground(QColor(VERDICT_STYLE.get(result.verdict, ("#888888",))[0]))
        item.setToolTip(f"{result.verdict}  score {result.score:.4g}\n{result.name}" if result.score is not None
                        else f"{result.verdict}\n{result.name}")
        self.insertItem(0, item)
        while self.count() > self.keep:
            self.takeItem(self.count() - 1)

    def results(self) -> list:
        return [self.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.count())]
