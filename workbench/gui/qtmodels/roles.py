"""Custom item-data roles shared by the models and their views."""

from PySide6.QtCore import Qt

ObjectRole = Qt.ItemDataRole.UserRole + 1  # the core object behind a row (record, entry, class)
SplitRole = Qt.ItemDataRole.UserRole + 2
LabelRole = Qt.ItemDataRole.UserRole + 3
SortRole = Qt.ItemDataRole.UserRole + 4  # raw value to sort numeric columns by
