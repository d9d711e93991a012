"""Anomaly Inspection Workbench: unsupervised visual inspection for quality engineers."""

from workbench.core.threads import prefer_passive_waiting

# Before torch or faiss load their OpenMP runtime: idle worker threads sleep instead of
# spinning, which keeps a busy 2-core machine usable (see workbench/core/threads.py).
prefer_passive_waiting()

__version__ = "0.1.0"
