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

from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.components.ops import parse_layers
from workbench.core.methods.components.training import TRAINING_PARAMS, ImageCache, train_method
from workbench.core.methods.reverse_distillation.torch_model import (
    OneClassBottleneck, RdModel, ReverseDecoder, rd_loss)
from workbench.core.methods.schema import Param, with_defaults


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

    common_defaults = {"image_size": 128}
    tiny_params = {"image_size": 64, "epochs": 3, "batch_size": 4, "embed_dim": 64, "decoder_width": 64}

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        self.backbone_layers = parse_layers(self.p.layers)
        if len(self.backbone_layers) < 2:
            raise ValueError("Reverse distillation needs at least two encoder stages, e.g. '1,2,3'.")

    def _new_module(self, tensors: dict[str, torch.Tensor] | None = None) -> RdModel:
        channels, strides = self.extractor.channels, self.extractor.strides
        bottleneck = OneClassBottleneck(channels, strides, self.p.embed_dim).to(self.device)
        decoder = ReverseDecoder(channels, strides, self.p.embed_dim, self.p.decoder_width).to(self.device)
        return RdModel(self.extractor, bottleneck, decoder, self.image_size, self.p.smoothing_sigma)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        cache = ImageCache(images, self.image_size, cancel, progress)
        module = self._new_module()
        encoder, bottleneck, decoder = module.encoder, module.bottleneck, module.decoder
        params = list(bottleneck.parameters()) + list(decoder.parameters())
        # Adam with beta1 = 0.5 as in the paper
        optimizer = torch.optim.Adam(params, lr=self.p.learning_rate, betas=(0.5, 0.999))

        def step_loss(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                feats = encoder(x)
            return rd_loss(feats, decoder(bottleneck(feats)))

        history = train_method(self, step_loss, [bottleneck, decoder], optimizer, cache, cancel, progress)
        self.metadata["training_history"] = history.as_metadata()
        self._set_module(module)
