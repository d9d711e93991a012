"""FastFlow (Yu et al., "FastFlow: Unsupervised Anomaly Detection and Localization via 2D
Normalizing Flows", 2021; arXiv:2111.07677).

Idea: features of a frozen backbone are mapped, stage by stage, by a *2D* normalizing flow
(a stack of affine coupling blocks whose subnetworks are convolutions, so each position's
transform sees its neighbourhood) onto a standard normal distribution. Training maximises
the exact likelihood of normal features; at test time a position whose latent ``z`` lies far
from the origin is unlikely, i.e. anomalous. No memory bank, constant model size and a
single forward pass at inference (ONNX-exportable).

As in the paper and anomalib: features of each stage pass through a LayerNorm (learned,
over C x h x w), the flow steps alternate 3x3 and 1x1 convolution subnets
(conv -> ReLU -> conv, hidden width = ``hidden_ratio`` x input), couplings are clamped
softly at 2.0, the loss is ``0.5 ||z||^2 - log|det J|`` and the anomaly map of a stage is
``-exp(-0.5 mean_c z^2)`` (minus the per-position likelihood), upsampled to the input and
averaged over stages; the image score is the maximum of the map.

Deviations (offline / 2-core CPU):
- backbone: the embedded EfficientNet-Lite0, stages 1,2,3 (strides 4, 8, 16) in place of
  ResNet18/WideResNet50/CaiT, which are not available offline.
- flows have 8 steps (the paper's ResNet setting) and train for a fixed small number of
  epochs with Adam (lr 1e-3, weight decay 1e-5, as the paper) instead of 500 epochs.
- the frozen backbone's features are computed once and reused every epoch (no augmentation
  is used, so this changes nothing but the time).
- the loss is divided by the number of feature elements (a per-dimension NLL, readable across
  image sizes); with Adam and disjoint per-stage parameters this does not change training.
- ``anomaly_map = "log_likelihood"`` offers the un-exponentiated ``0.5 mean_c z^2`` instead,
  which does not saturate for strong anomalies; an optional Gaussian smoothing of the map.
- the coupling blocks are our own (see :mod:`.coupling`) instead of FrEIA's AllInOneBlock.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods.components.feature_cache import FlowMethod
from workbench.core.methods.components.training import TRAINING_PARAMS, train_method
from workbench.core.methods.fastflow.torch_model import FastFlowModel, FastFlowNet, Shape, fastflow_loss
from workbench.core.methods.schema import Param


class FastFlow(FlowMethod):
    name = "fastflow"
    title = "FastFlow"
    family = "Normalizing flow"
    description = ("Learns an exact likelihood of normal backbone features with a 2D normalizing flow "
                   "per stage and flags unlikely positions. Small model, single forward pass, good "
                   "localisation; needs a short training run.")
    method_params = (
        Param("layers", "choice", "1,2,3", "Backbone stages that get a flow. Stage 1 (stride 4) localises "
              "small defects best but is the slowest.", choices=("1,2", "2,3", "1,2,3")),
        Param("flow_steps", "int", 8, "Coupling blocks per flow. More models the feature distribution "
              "more exactly but trains and runs slower.", 1, 32),
        Param("hidden_ratio", "float", 1.0, "Width of the coupling subnetworks relative to their input. "
              "Wider is more expressive but slower and easier to overfit.", 0.1, 8.0),
        Param("conv3x3_only", "bool", False, "Use 3x3 convolutions in every step instead of alternating "
              "3x3 and 1x1: more spatial context, more parameters and time."),
        Param("clamp", "float", 2.0, "Soft limit of each coupling's log-scale. Lower is more stable, "
              "higher is more expressive.", 0.1, 10.0),
        Param("anomaly_map", "choice", "probability", "'probability' is the paper's -exp(-0.5 mean z^2): "
              "sharper maps, but it saturates so strong anomalies all score alike; 'log_likelihood' uses "
              "0.5 mean z^2 directly and keeps ranking strong anomalies.", choices=("probability", "log_likelihood")),
        Param("smoothing_sigma", "float", 4.0, "Gaussian smoothing of the anomaly map in pixels "
              "(0 = off, as in the paper). Smooths noise at the cost of very small defects.", 0.0, 32.0),
    ) + TRAINING_PARAMS

    tiny_params = {"image_size": 64, "epochs": 3, "flow_steps": 2, "learning_rate": 3e-3}

    def _build(self, shapes: Sequence[Shape]) -> FastFlowNet:
        p = self.p
        return FastFlowNet(shapes, p.flow_steps, p.hidden_ratio, p.conv3x3_only, p.clamp, p.seed).to(self.device)

    def _wrap(self, net: FastFlowNet) -> FastFlowModel:
        return FastFlowModel(self.extractor, net, self.image_size, self.p.anomaly_map, self.p.smoothing_sigma)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        cache = self._features(images, progress, cancel)
        net = self._build(cache.shapes)
        optimizer = torch.optim.Adam(net.parameters(), lr=self.p.learning_rate, weight_decay=1e-5)

        def step_loss(index: torch.Tensor) -> torch.Tensor:
            return fastflow_loss(net(cache.features(index)))

        self._finish(net, train_method(self, step_loss, [net], optimizer, cache, cancel, progress))
