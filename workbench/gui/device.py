"""A short description of the compute device for the status bar."""

from __future__ import annotations

import torch

from workbench.core.methods import default_device


def device_description() -> str:
    """"CUDA: <GPU name>" or "CPU (N threads)": the engineer should know why training is slow."""
    device = default_device()
    if device.type == "cuda":
        try:
            return f"GPU: {torch.cuda.get_device_name(device)}"
        except (RuntimeError, AssertionError):
            return "GPU (CUDA)"
    return f"CPU ({torch.get_num_threads()} threads)"
