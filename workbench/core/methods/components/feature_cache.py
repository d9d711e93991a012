"""Frozen-backbone features of the training images, computed once for all epochs.

The flows train on features of a frozen backbone without augmentation, so recomputing the
backbone every epoch is wasted work (on a 2-core CPU it is most of the step time). A
:class:`FeatureCache` plugs into :func:`workbench.core.methods.components.training.train_loop` in place of
an ``ImageCache``: ``batch(index, ...)`` hands the loop the image indices, and the method's
``step_loss`` turns them into features with :meth:`FeatureCache.features`.

Features are kept in float16 on the host (about 340 KB per 256 px image for stages 1-3 of
EfficientNet-Lite0). When they would exceed ``max_bytes`` the cache keeps the resized uint8
images instead and runs the backbone per step, exactly like the shared loop would.

:class:`FlowMethod` is the part of the method class both flows (FastFlow, CFlow-AD) share.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import numpy as np
import torch

from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.components.inference import InferenceModule
from workbench.core.methods.components.ops import parse_layers
from workbench.core.methods.components.training import ImageCache, TrainingHistory

DEFAULT_MAX_BYTES = 2 * 1024**3


class FeatureCache:
    """Training images -> per-stage backbone features, indexed by image number."""

    def __init__(self, extractor: torch.nn.Module, images: Sequence[np.ndarray], size: int,
                 mean: Sequence[float], std: Sequence[float], device: torch.device, cancel: CancelToken,
                 progress: ProgressCallback | None = None, batch_size: int = 8,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.extractor, self.mean, self.std, self.device = extractor, mean, std, device
        self.images = ImageCache(images, size, cancel, progress)
        with torch.inference_mode():
            probe = extractor(self.images.batch(np.arange(1), mean, std, device))
        self.shapes: list[tuple[int, int, int]] = [tuple(f.shape[1:]) for f in probe]  # type: ignore[misc]
        per_image = sum(int(np.prod(s)) for s in self.shapes) * 2
        self.stored: list[torch.Tensor] | None = None
        if per_image * len(self.images) <= max_bytes:
            report = make_reporter(progress, "extract features", len(self.images))
            self.stored = [torch.empty((len(self.images), *s), dtype=torch.float16) for s in self.shapes]
            for start in range(0, len(self.images), batch_size):
                cancel.raise_if_cancelled()
                idx = np.arange(start, min(start + batch_size, len(self.images)))
                with torch.inference_mode():
                    feats = extractor(self.images.batch(idx, mean, std, device))
                for store, feat in zip(self.stored, feats):
                    store[start:start + len(idx)] = feat.to("cpu", torch.float16)
                report(int(idx[-1]) + 1)
            self.images.data = np.empty((0, size, size, 3), np.uint8)  # not needed any more

    def __len__(self) -> int:
        return len(self.stored[0]) if self.stored is not None else len(self.images)

    def batch(self, index: np.ndarray, mean: Sequence[float], std: Sequence[float],
              device: torch.device) -> torch.Tensor:
        """What train_loop passes to ``step_loss``: the image indices of the batch."""
        return torch.as_tensor(np.asarray(index), dtype=torch.long)

    def features(self, index: torch.Tensor) -> list[torch.Tensor]:
        """Float32 features [B, C, h, w] per stage of the images ``index`` on the device."""
        if self.stored is not None:
            return [s[index].to(self.device).float() for s in self.stored]
        with torch.no_grad():
            return list(self.extractor(self.images.batch(index.numpy(), self.mean, self.std, self.device)))


class FlowMethod(AnomalyModel):
    """What FastFlow and CFlow-AD share: one trainable ``net`` on cached frozen-backbone
    features, wrapped with the backbone into the method's inference module. Subclasses build
    the net (``_build``) from the backbone's feature shapes, wrap it (``_wrap``) and define
    ``_fit``."""

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        self.backbone_layers = parse_layers(self.p.layers)

    @abstractmethod
    def _build(self, shapes: Sequence[tuple[int, int, int]]) -> torch.nn.Module: ...

    @abstractmethod
    def _wrap(self, net: torch.nn.Module) -> InferenceModule:
        """The inference module (backbone + ``net``) of a built or trained net."""

    def _feature_shapes(self) -> list[tuple[int, int, int]]:
        with torch.inference_mode():
            x = torch.zeros(1, 3, self.image_size, self.image_size, device=self.device)
            return [tuple(f.shape[1:]) for f in self.extractor(x)]  # type: ignore[misc]

    def _features(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
                  cancel: CancelToken) -> FeatureCache:
        mean, std = self.normalization
        return FeatureCache(self.extractor, images, self.image_size, mean, std, self.device, cancel,
                            progress, batch_size=self.p.batch_size)

    def _finish(self, net: torch.nn.Module, history: TrainingHistory) -> None:
        self.metadata["loss_history"] = {"train": history.train_loss, "val": history.val_loss,
                                         "best_epoch": history.best_epoch}
        self._set_module(self._wrap(net.eval()))

    def _new_module(self, tensors: dict[str, torch.Tensor]) -> InferenceModule:
        return self._wrap(self._build(self._feature_shapes()))

    def upgrade_state(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Packages saved before the inference module existed hold the net's keys unprefixed."""
        if any(k.startswith("net.") for k in tensors):
            return tensors
        return {f"net.{k}": v for k, v in tensors.items()}
