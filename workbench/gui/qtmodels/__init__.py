"""Qt item models over core objects: views show these, never hand-filled widgets."""

from .datasets import DatasetListModel
from .image_list import ImageFilterProxy, ImageListModel
from .methods import MethodListModel
from .model_table import ModelTableModel
from .report import ReportCountsModel

__all__ = ["DatasetListModel", "ImageFilterProxy", "ImageListModel", "MethodListModel",
           "ModelTableModel", "ReportCountsModel"]
