"""Anomaly detection methods, one folder each, listed in :mod:`.registry`."""

from workbench.core.methods.base import AnomalyModel, default_device
from workbench.core.methods.registry import DEFAULT_METHOD, METHODS, create_method, get_method
from workbench.core.methods.schema import Param

__all__ = ["AnomalyModel", "DEFAULT_METHOD", "METHODS", "Param", "create_method", "default_device", "get_method"]
