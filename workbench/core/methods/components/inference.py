"""The base of every method's ``torch_model``: one module from a normalised batch to
``(scores[B], maps[B, S, S])`` that holds all learned state as parameters and buffers.

Predict, the ONNX export and model packages all go through this one module: ``predict`` calls
it, ``export_onnx`` traces it, and a package's ``weights.safetensors`` is its ``state_dict``
minus the frozen pretrained parts (named in ``frozen``), which are rebuilt from the backbone
spec on load instead of being stored.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class InferenceModule(nn.Module):
    """``forward(x) -> (scores, maps)``; subclasses list their pretrained, never-saved submodules
    in ``frozen`` (e.g. the backbone)."""

    frozen: ClassVar[tuple[str, ...]] = ()

    def _is_frozen(self, key: str) -> bool:
        return any(key == name or key.startswith(name + ".") for name in self.frozen)

    def saved_state(self) -> dict[str, torch.Tensor]:
        """The learned tensors, as contiguous CPU tensors named by their ``state_dict`` keys."""
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if not self._is_frozen(k)}

    def load_saved_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`saved_state` returned; every learned tensor must be present and nothing
        else (the frozen parts are left as built)."""
        # Copied entry by entry rather than with load_state_dict, whose BatchNorm hook would also
        # rewrite the frozen backbone's counters (which may be inference-mode tensors).
        current = {k: v for k, v in self.state_dict(keep_vars=True).items() if not self._is_frozen(k)}
        missing, unexpected = sorted(set(current) - set(tensors)), sorted(set(tensors) - set(current))
        if missing or unexpected:
            raise KeyError(f"the saved tensors do not fit this model: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")
        with torch.no_grad():
            for key, target in current.items():
                if tuple(target.shape) != tuple(tensors[key].shape):
                    raise ValueError(f"saved tensor {key} has shape {tuple(tensors[key].shape)}, "
                                     f"the model expects {tuple(target.shape)}")
                target.copy_(tensors[key])

    def train(self, mode: bool = True) -> "InferenceModule":
        """Frozen pretrained parts stay in eval mode (their BatchNorm statistics never move)."""
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self
