"""The image grid model: thousands of dataset records with lazily loaded thumbnails.

Only rows a view actually paints ask for their thumbnail (``data(DecorationRole)``), the
decoding runs in a background pool, and an LRU cache bounds memory. Together with
``setUniformItemSizes(True)`` on the view this keeps a 5,000+ image dataset smooth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, QSize, QSortFilterProxyModel, Qt, Slot
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap

from workbench.core.data import ImageRecord, read_image
from workbench.gui.imaging import BackgroundImageLoader, LruCache, fit_within, rgb_to_qimage
from workbench.gui.qtmodels.roles import LabelRole, ObjectRole, SplitRole

ANOMALOUS = "__anomalous__"  # class filter value meaning "any defect type"
Index = QModelIndex | QPersistentModelIndex


def load_thumbnail(path: Path, size: int) -> QImage:
    """Runs in the loader's pool: decode with the core, shrink, convert."""
    return rgb_to_qimage(fit_within(read_image(path), size))


def placeholder_pixmap(size: int, color: str = "#e3e6ea", text: str = "") -> QPixmap:
    pix = QPixmap(size, size)
    pix.fill(QColor(color))
    if text:
        painter = QPainter(pix)
        painter.setPen(QColor("#8a9199"))
        painter.drawText(pix.rect(), Qt.AlignmentFlag.AlignCenter, text)
        painter.end()
    return pix


class ImageListModel(QAbstractListModel):
    """One row per :class:`ImageRecord`; DecorationRole is a thumbnail (placeholder until loaded)."""

    def __init__(self, thumb_size: int = 112, cache_size: int = 800, threads: int = 1,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thumb_size = thumb_size
        self.records: list[ImageRecord] = []
        self._rows: dict[str, int] = {}
        self._cache: LruCache = LruCache(cache_size)
        self._broken: set[str] = set()
        self.loader = BackgroundImageLoader(threads=threads, max_pending=4 * 64, parent=self)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self._on_failed)
        self._placeholder = QIcon(placeholder_pixmap(thumb_size))
        self._broken_icon = QIcon(placeholder_pixmap(thumb_size, "#f4dcdc", "unreadable"))

    def set_records(self, records: list[ImageRecord]) -> None:
        self.beginResetModel()
        self.loader.clear()
        self.records = list(records)
        self._rows = {str(r.path): i for i, r in enumerate(self.records)}
        self._broken.clear()
        self.endResetModel()

    def record(self, row: int) -> ImageRecord:
        return self.records[row]

    # ------------------------------------------------------------------ Qt API
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.records)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.records):
            return None
        rec = self.records[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:  # MVTec reuses file names across classes
            return f"{rec.label}/{rec.path.name}"
        if role == Qt.ItemDataRole.DecorationRole:
            return self._thumbnail(rec)
        if role == Qt.ItemDataRole.ToolTipRole:
            mask = "mask: yes" if rec.mask_path else ("mask: none" if rec.is_anomalous else "")
            return f"{rec.path}\n{rec.split} / {rec.label}" + (f"   {mask}" if mask else "")
        if role == Qt.ItemDataRole.ForegroundRole and rec.is_anomalous:
            return QColor("#b3261e")
        if role == Qt.ItemDataRole.SizeHintRole:
            return QSize(self.thumb_size + 16, self.thumb_size + 28)
        if role == ObjectRole:
            return rec
        if role == SplitRole:
            return rec.split
        if role == LabelRole:
            return rec.label
        return None

    # ------------------------------------------------------------------ thumbnails
    def _thumbnail(self, rec: ImageRecord) -> QIcon:
        key = str(rec.path)
        icon = self._cache.get_recent(key)
        if icon is not None:
            return icon
        if key in self._broken:
            return self._broken_icon
        size = self.thumb_size
        self.loader.request(key, lambda path=rec.path: load_thumbnail(path, size))
        return self._placeholder

    @Slot(object, QImage)
    def _on_loaded(self, key: str, image: QImage) -> None:
        row = self._rows.get(key)
        if row is None:
            return  # a request from a dataset no longer shown
        self._cache.put(key, QIcon(QPixmap.fromImage(image)))
        index = self.index(row)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    @Slot(object, str)
    def _on_failed(self, key: str, message: str) -> None:
        row = self._rows.get(key)
        if row is None:
            return
        self._broken.add(key)
        index = self.index(row)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class ImageFilterProxy(QSortFilterProxyModel):
    """Filters an :class:`ImageListModel` by split and by class (good, any defect, one type)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.split: str | None = None
        self.label: str | None = None

    def set_filter(self, split: str | None = None, label: str | None = None) -> None:
        """``None`` means "all"; ``label`` may be ``ANOMALOUS`` for every defect type."""
        self.beginFilterChange()
        self.split, self.label = split, label
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        if not isinstance(model, ImageListModel):
            return True
        rec = model.records[source_row]  # direct access: 5,000 data() calls per filter change are slow
        if self.split is not None and rec.split != self.split:
            return False
        if self.label is None:
            return True
        if self.label == ANOMALOUS:
            return rec.is_anomalous
        return rec.label == self.label
