"""Reverse Distillation (Deng & Li, "Anomaly Detection via Reverse Distillation from One-Class
Embedding", CVPR 2022), known as RD4AD.

A frozen pretrained encoder (the teacher) describes an image at several stages. A trainable
one-class bottleneck embedding (OCBE) fuses those stages into one compact, low-resolution
code, and a decoder (the student) reconstructs every encoder stage from that code alone,
"in reverse" (coarse to fine). Trained on good images only, the bottleneck keeps only what
normal images need; on an anomaly the decoder reproduces the normal appearance and the
encoder's and decoder's features disagree. Loss and anomaly map are ``1 - cosine
similarity`` per position and stage; the map sums the upsampled stage maps and is smoothed
with a Gaussian (sigma 4 as in the paper); the image score is the map's maximum.

Deviations, forced by offline CPU use: the encoder is the embedded EfficientNet-Lite0
(stages 1-3, strides 4-16) instead of WideResNet-50, so OCBE and decoder are small
convolutional networks mirroring its stages (ResNet basic blocks, transposed convolutions
to upsample) rather than the paper's WideResNet layers; the default input is 128 px and
training runs a few dozen epochs, so one category trains in a few minutes on two CPU cores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods.base import COMMON_PARAMS, AnomalyModel
from workbench.core.methods.ops import parse_layers
from workbench.core.methods.reverse_distillation.torch_model import (
    OneClassBottleneck, RdInference, ReverseDecoder, rd_loss)
from workbench.core.methods.schema import Param
from workbench.core.methods.stfpm.model import with_defaults
from workbench.core.methods.trainer import TRAINING_PARAMS, ImageCache, train_loop


class ReverseDistillation(AnomalyModel):
    name = "reverse_distillation"
    title = "Reverse Distillation (RD4AD)"
    family = "Knowledge distillation (teacher-student)"
    description = ("A decoder learns to rebuild a frozen pretrained encoder's multi-scale features "
                   "from a compact one-class bottleneck; anomalies are where the rebuilt features "
                   "disagree. Strong localisation, one forward pass, exportable to ONNX.")
    method_params = (
        Param("layers", "choice", "1,2,3", "Encoder stages reconstructed. Finer stages (1) localise "
              "small defects, coarser ones (3) add context.", choices=("1,2", "2,3", "1,2,3")),
        Param("embed_dim", "int", 256, "Channels of the one-class bottleneck. Smaller forces a "
              "tighter model of normality (anomalies reconstruct worse, good) but may blur normal "
              "detail (more false alarms).", 16, 2048),
        Param("decoder_width", "int", 256, "Channels of the decoder's coarsest stage (halved at each "
              "finer stage). Wider learns more detail but trains slower.", 32, 2048),
        Param("smoothing_sigma", "float", 4.0, "Gaussian smoothing of the anomaly map in pixels.", 0.0, 32.0),
        *with_defaults(TRAINING_PARAMS, epochs=40, learning_rate=5e-3),
    )

    @classmethod
    def schema(cls) -> tuple[Param, ...]:
        return with_defaults(COMMON_PARAMS, image_size=128) + cls.method_params

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        self.backbone_layers = parse_layers(self.params["layers"])
        if len(self.backbone_layers) < 2:
            raise ValueError("Reverse distillation needs at least two encoder stages, e.g. '1,2,3'.")
        self.bottleneck: nn.Module | None = None
        self.decoder: nn.Module | None = None

    def _new_networks(self) -> tuple[nn.Module, nn.Module]:
        channels, strides = self.extractor.channels, self.extractor.strides
        embed, width = int(self.params["embed_dim"]), int(self.params["decoder_width"])
        bottleneck = OneClassBottleneck(channels, strides, embed).to(self.device)
        decoder = ReverseDecoder(channels, strides, embed, width).to(self.device)
        return bottleneck, decoder

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        encoder = self.extractor
        cache = ImageCache(images, self.image_size, cancel, progress)
        bottleneck, decoder = self._new_networks()
        params = list(bottleneck.parameters()) + list(decoder.parameters())
        # Adam with beta1 = 0.5 as in the paper
        optimizer = torch.optim.Adam(params, lr=float(self.params["learning_rate"]), betas=(0.5, 0.999))

        def step_loss(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                feats = encoder(x)
            return rd_loss(feats, decoder(bottleneck(feats)))

        mean, std = self.normalization
        history = train_loop(step_loss, [bottleneck, decoder], optimizer, cache, mean=mean, std=std,
                             device=self.device, epochs=int(self.params["epochs"]),
                             batch_size=int(self.params["batch_size"]), seed=int(self.params["seed"]),
                             cancel=cancel, progress=progress, early_stopping=int(self.params["early_stopping"]))
        self.metadata["training_history"] = {"train_loss": history.train_loss, "val_loss": history.val_loss,
                                             "best_epoch": history.best_epoch}
        self.bottleneck, self.decoder = bottleneck.eval(), decoder.eval()

    def export_module(self) -> nn.Module:
        assert self.bottleneck is not None and self.decoder is not None
        return RdInference(self.extractor, self.bottleneck, self.decoder, self.image_size,
                           float(self.params["smoothing_sigma"])).eval()

    def _predict_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.export_module()(x)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        assert self.bottleneck is not None and self.decoder is not None
        out = {}
        for prefix, module in (("bottleneck", self.bottleneck), ("decoder", self.decoder)):
            out.update({f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        bottleneck, decoder = self._new_networks()
        for prefix, module in (("bottleneck", bottleneck), ("decoder", decoder)):
            n = len(prefix) + 1
            module.load_state_dict({k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
        self.bottleneck, self.decoder = bottleneck.eval(), decoder.eval()
        self.fitted = True
