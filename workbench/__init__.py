"""Anomaly Inspection Workbench: unsupervised visual inspection for quality engineers."""

__version__ = "0.1.0"
