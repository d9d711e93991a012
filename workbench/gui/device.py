"""A short description of the compute device for the status bar."""

from __future__ import annotations

import os

import torch

from workbench.core.methods import default_device
from workbench.gui.settings import AppSettings, load_settings


def device_description(settings: AppSettings | None = None) -> str:
    """"GPU: <name>" or "CPU (N threads)": the engineer should know why training is slow.
    Describes what the compute process uses (the device and CPU threads of the settings), not
    the GUI process, which computes nothing."""
    values = settings or load_settings()
    device = default_device() if values.device == "auto" else torch.device(values.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        return "CUDA (not available: jobs will fail; choose auto or CPU in the settings)"
    if device.type == "cuda":
        try:
            return f"GPU: {torch.cuda.get_device_name(device)}"
        except (RuntimeError, AssertionError):
            return "GPU (CUDA)"
    return f"CPU ({values.cpu_threads or os.cpu_count() or 1} threads)"
