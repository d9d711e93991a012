"""The one interface every anomaly detection method implements.

Modelled on scikit-learn estimators (explicit params, ``fit`` then ``predict``) with
anomalib's split of torch model and training loop: subclasses implement ``_fit`` and
``_predict_tensor`` on preprocessed tensors, the base class owns batching, progress,
cancellation, devices and the parameter schema.

Each method is two files: ``model.py`` (this class: schema and ``fit``) and ``torch_model.py``
(one :class:`~workbench.core.methods.components.inference.InferenceModule` from a normalised
batch to ``(scores, maps)`` holding everything learned). ``fit`` ends by handing that module to
:meth:`AnomalyModel._set_module`; from then on predict, the ONNX export and saving all use it.
Saving and loading live in :mod:`workbench.core.methods.package` and only ever use
``state_tensors`` / ``load_state_tensors``, i.e. the module's ``state_dict``.
"""

from __future__ import annotations

import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from workbench.core.backbones import DEFAULT_BACKBONE, EMBEDDED, BackboneSpec, create_extractor
from workbench.core.backbones.extractor import FeatureExtractor
from workbench.core.backbones.weights import input_normalization
from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.methods.components.inference import InferenceModule
from workbench.core.methods.images import batches, to_tensor
from workbench.core.methods.schema import Param, params_view, resolve_params, with_defaults
from workbench.core.tiling import TilingSpec, predict_tiled

COMMON_PARAMS: tuple[Param, ...] = (
    Param("image_size", "int", 256, "Images are resized to this square size before the backbone. "
          "Larger finds smaller defects but is slower (time grows with the square).", 64, 1024),
    Param("backbone", "str", DEFAULT_BACKBONE, "timm model name of the pretrained feature extractor."),
    Param("weights", "str", EMBEDDED, "'embedded' (offline ImageNet EfficientNet-Lite0), 'imagenet' "
          "(timm download, needs network) or a path to a .safetensors/.pth file."),
    Param("batch_size", "int", 8, "Images per forward pass. Lower it if memory runs out.", 1, 256),
    Param("seed", "int", 0, "Random seed: the same seed and data give the same model.", 0, 2**31 - 1),
)

Report = Callable[..., None]
log = logging.getLogger(__name__)


def default_device() -> torch.device:
    """CUDA when present, CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


BACKBONE_PARAMS = ("backbone", "weights")


class AnomalyModel(ABC):
    """Base class of all methods. Subclasses declare ``name``, ``title``, ``family``,
    ``description``, ``method_params`` (:data:`COMMON_PARAMS` are added) and ``tiny_params``,
    and implement ``_fit`` and ``_new_module``."""

    name: ClassVar[str]
    title: ClassVar[str]
    family: ClassVar[str]
    description: ClassVar[str]
    method_params: ClassVar[tuple[Param, ...]] = ()
    # Defaults of common parameters this method changes (e.g. a CPU-friendly image_size).
    common_defaults: ClassVar[dict[str, Any]] = {}
    # False for methods that learn from raw pixels: the backbone parameters leave their schema.
    uses_backbone: ClassVar[bool] = True
    # Whether ``export_module`` is a graph of ONNX-exportable operations.
    exportable: ClassVar[bool] = True
    # The smallest budget that still trains every part: the method contract tests fit with it.
    tiny_params: ClassVar[dict[str, Any]] = {}
    # Values of parameters added after a method first shipped, as that method behaved before
    # them; a saved model whose package lacks such a parameter loads with this value, not the
    # new default, so its scores (and the threshold calibrated on them) do not change.
    params_before_added: ClassVar[dict[str, Any]] = {}

    def __init__(self, device: str | torch.device | None = None, **params: Any) -> None:
        schema = self.schema()
        self.params: dict[str, Any] = resolve_params(schema, params)
        # typed, read-only view of the same values: ``self.p.coreset_ratio``
        self.p: Any = params_view(type(self).__name__, schema, self.params)
        self.device = torch.device(device) if device is not None else default_device()
        self.backbone_spec = BackboneSpec(self.params.get("backbone", DEFAULT_BACKBONE),
                                          self.params.get("weights", EMBEDDED))
        self.metadata: dict[str, Any] = {}
        # Tensors that are not part of inference (e.g. where each memory-bank entry came from,
        # for evidence); saved beside the weights, see methods.package.
        self.aux_tensors: dict[str, torch.Tensor] = {}
        self._extractor: FeatureExtractor | None = None
        self._module: InferenceModule | None = None
        self.fitted = False

    @classmethod
    def schema(cls) -> tuple[Param, ...]:
        common = COMMON_PARAMS if cls.uses_backbone else tuple(p for p in COMMON_PARAMS
                                                               if p.name not in BACKBONE_PARAMS)
        return with_defaults(common, **cls.common_defaults) + cls.method_params

    @classmethod
    def params_from_package(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """The parameters a package recorded, brought to this version: parameters added since get
        their old behaviour (``params_before_added``); the backbone parameters that methods without
        a backbone used to accept (and ignore) are dropped."""
        dropped = () if cls.uses_backbone else BACKBONE_PARAMS
        return {**cls.params_before_added, **{k: v for k, v in saved.items() if k not in dropped}}

    @property
    def image_size(self) -> int:
        return self.p.image_size

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) applied to RGB in [0, 1] before the backbone."""
        return input_normalization(self.backbone_spec)

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 images -> normalised NCHW float tensor on the model's device."""
        mean, std = self.normalization
        return to_tensor(images, self.image_size, mean, std).to(self.device)

    # ----------------------------------------------------------------- backbone
    backbone_layers: tuple[int, ...] = (2, 3)

    @property
    def extractor(self) -> FeatureExtractor:
        """The frozen backbone, built on first use (weights are never stored in the package)."""
        if self._extractor is None:
            self._extractor = create_extractor(self.backbone_spec, self.backbone_layers, self.device)
            self.backbone_spec = self._extractor.spec
        return self._extractor

    # ----------------------------------------------------------------- public API
    def fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None,
            cancel: CancelToken | None = None) -> "AnomalyModel":
        """Learn normality from good images only. Raises ``Cancelled`` if cancelled."""
        if len(images) == 0:
            raise ValueError("No training images: an unsupervised method needs good images to learn from.")
        seed_everything(self.p.seed)
        cancel = cancel or CancelToken()
        self.fitted = False
        self._module = None
        self.aux_tensors = {}
        self._fit(images, progress, cancel)
        cancel.raise_if_cancelled()  # a cancel during the last step still discards the result
        self.fitted = True
        return self

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None,
                cancel: CancelToken | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Score images: returns ``(scores[N] float32, maps[N, S, S] float32)`` with S = image_size
        (S = the tiling's ``map_size`` for a tiled model, see :mod:`workbench.core.tiling`).

        Higher means more anomalous. Maps are at the model's input resolution; use
        :func:`workbench.core.metrics.resize_map` to bring them to an image's own size.
        """
        if not self.fitted:
            raise RuntimeError(f"{self.title} is not trained yet: call fit() or load a model.")
        cancel = cancel or CancelToken()
        tiling = self.tiling
        if tiling is not None:  # large images: tiles at the model's size, stitched map (core.tiling)
            return predict_tiled(images, self._score_tiles, tiling, self.p.batch_size, progress, cancel)
        report = make_reporter(progress, "predict", len(images))
        scores = np.empty(len(images), np.float32)
        maps = np.empty((len(images), self.image_size, self.image_size), np.float32)
        for start, chunk in batches(images, self.p.batch_size):
            cancel.raise_if_cancelled()
            batch_scores, batch_maps = self._predict_chunk(chunk)
            scores[start:start + len(chunk)] = batch_scores.float().cpu().numpy()
            maps[start:start + len(chunk)] = batch_maps.float().cpu().numpy()
            report(start + len(chunk))
        return scores, maps

    @property
    def tiling(self) -> TilingSpec | None:
        """The tiling setting stored with the model (``metadata["tiling"]``), or None."""
        return TilingSpec.from_metadata(self.metadata)

    @property
    def map_size(self) -> int:
        """Side of the maps ``predict`` returns: the input size, or the stitched map's size."""
        tiling = self.tiling
        return self.image_size if tiling is None else tiling.map_size

    def _score_tiles(self, tiles: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        scores, maps = self._predict_chunk(tiles)
        return scores.float().cpu().numpy(), maps.float().cpu().numpy()

    def _predict_chunk(self, chunk: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """``_predict_tensor`` on a list of images; on CUDA out-of-memory the batch is halved and
        retried down to single images, then the model moves to the CPU (logged) and goes on."""
        try:
            return self._predict_tensor(self.preprocess(chunk))
        except torch.cuda.OutOfMemoryError:
            if len(chunk) == 1 and self.device.type == "cpu":
                raise
        # retried outside the except block, so the failed attempt's tensors are freed first
        if len(chunk) > 1:
            half = len(chunk) // 2
            a, b = self._predict_chunk(chunk[:half]), self._predict_chunk(chunk[half:])
            return torch.cat([a[0].cpu(), b[0].cpu()]), torch.cat([a[1].cpu(), b[1].cpu()])
        log.warning("%s: out of GPU memory even for one image; continuing on the CPU (slower).", self.title)
        tensors = {k: v.detach().cpu() for k, v in self.state_tensors().items()}
        self.device, self._extractor = torch.device("cpu"), None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.load_state_tensors(tensors)
        return self._predict_tensor(self.preprocess(chunk))

    def iter_feature_batches(self, images: Sequence[np.ndarray], cancel: CancelToken,
                             report: Report) -> Any:
        """Yield backbone features of ``images`` batch by batch, reporting progress."""
        for start, chunk in batches(images, self.p.batch_size):
            cancel.raise_if_cancelled()
            x = self.preprocess(chunk)
            with torch.inference_mode():
                feats = self.extractor(x)
            yield feats
            report(start + len(chunk))

    # ----------------------------------------------------------------- for subclasses
    @abstractmethod
    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        """Learn from ``images`` and end with ``self._set_module(...)``."""

    @abstractmethod
    def _new_module(self, tensors: dict[str, torch.Tensor]) -> InferenceModule:
        """An inference module shaped for ``tensors`` (a saved state, already upgraded), on the
        model's device, for :meth:`load_state_tensors` to load them into."""

    def upgrade_state(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Saved tensors as the current module names them (override when a name changed)."""
        return tensors

    # ----------------------------------------------------------------- the inference module
    def _set_module(self, module: InferenceModule) -> None:
        self._module = module.to(self.device).eval()

    @property
    def module(self) -> InferenceModule:
        """The trained inference module (predict, export and saving all use this one)."""
        if self._module is None:
            raise RuntimeError(f"{self.title} is not trained yet: call fit() or load a model.")
        return self._module

    def _predict_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised NCHW batch -> (scores[B], maps[B, S, S]) on any device."""
        return self.module(x)

    def export_module(self) -> torch.nn.Module:
        """A module mapping a normalised NCHW batch to ``(scores[B], maps[B, S, S])`` with
        ONNX-exportable operations only, equal to ``_predict_tensor``."""
        if not self.exportable:
            raise NotImplementedError(f"{self.title} cannot be exported to ONNX: its inference is not a "
                                      "single forward pass.")
        return self.module

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything learned, as named tensors (saved with safetensors)."""
        return self.module.saved_state()

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what ``state_tensors`` returned (or an older package's names); marks the model fitted."""
        tensors = self.upgrade_state(dict(tensors))
        module = self._new_module(tensors)
        module.load_saved_state({k: v.to(self.device) for k, v in tensors.items()})
        self._set_module(module)
        self.fitted = True
