"""Anomaly Inspection Workbench: unsupervised visual inspection for quality engineers."""

import os

# Before torch or faiss load their OpenMP runtime: idle worker threads sleep instead of
# spinning, which keeps a busy 2-core machine usable (workbench.core.threads explains why;
# inlined here so the torch-free Inspector bundle imports nothing more than before).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
