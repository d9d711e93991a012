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
from torch import nn

from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods.fastflow.coupling import AffineCoupling, Flow, conv_subnet
from workbench.core.methods.fastflow.features import FeatureCache, FlowMethod
from workbench.core.methods.ops import gaussian_blur, upsample_maps
from workbench.core.methods.schema import Param
from workbench.core.methods.trainer import TRAINING_PARAMS, train_loop

Shape = tuple[int, int, int]


class FastFlowNet(nn.Module):
    """LayerNorm + 2D flow per backbone stage: features -> list of ``(z, log|det J|)``."""

    def __init__(self, shapes: Sequence[Shape], flow_steps: int, hidden_ratio: float, conv3x3_only: bool,
                 clamp: float, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.norms = nn.ModuleList(nn.LayerNorm(list(shape), elementwise_affine=True) for shape in shapes)
        self.flows = nn.ModuleList(
            Flow([AffineCoupling(c, conv_subnet(1 if (i % 2 == 1 and not conv3x3_only) else 3, hidden_ratio),
                                 clamp, generator=generator) for i in range(flow_steps)])
            for c, _, _ in shapes)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [flow(norm(f)) for f, norm, flow in zip(feats, self.norms, self.flows)]


def fastflow_loss(outputs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Sum over stages of the mean per-element negative log-likelihood (without constants)."""
    loss = outputs[0][0].new_zeros(())
    for z, log_det in outputs:
        loss = loss + (0.5 * z.flatten(1).pow(2).sum(1) - log_det).mean() / z[0].numel()
    return loss


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

    def _build(self, shapes: Sequence[Shape]) -> FastFlowNet:
        p = self.params
        return FastFlowNet(shapes, int(p["flow_steps"]), float(p["hidden_ratio"]), bool(p["conv3x3_only"]),
                           float(p["clamp"]), int(p["seed"])).to(self.device)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        mean, std = self.normalization
        cache = FeatureCache(self.extractor, images, self.image_size, mean, std, self.device, cancel,
                             progress, batch_size=int(self.params["batch_size"]))
        net = self._build(cache.shapes)
        optimizer = torch.optim.Adam(net.parameters(), lr=float(self.params["learning_rate"]), weight_decay=1e-5)

        def step_loss(index: torch.Tensor) -> torch.Tensor:
            return fastflow_loss(net(cache.features(index)))

        history = train_loop(step_loss, [net], optimizer, cache, mean=mean, std=std, device=self.device,
                             epochs=int(self.params["epochs"]), batch_size=int(self.params["batch_size"]),
                             seed=int(self.params["seed"]), cancel=cancel, progress=progress,
                             early_stopping=int(self.params["early_stopping"]))
        self.net = net.eval()
        self._record_history(history)

    def export_module(self) -> nn.Module:
        assert self.net is not None
        return FastFlowInference(self.extractor, self.net, self.image_size, self.params["anomaly_map"],
                                 float(self.params["smoothing_sigma"]))


class FastFlowInference(nn.Module):
    """Backbone -> flows -> anomaly map and image score (predict and ONNX export alike)."""

    def __init__(self, extractor: nn.Module, net: FastFlowNet, image_size: int, anomaly_map: str,
                 sigma: float) -> None:
        super().__init__()
        self.extractor, self.net = extractor, net
        self.image_size, self.probability, self.sigma = image_size, anomaly_map == "probability", sigma

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stage_maps = []
        for z, _ in self.net(self.extractor(x)):
            nll = 0.5 * z.pow(2).mean(1)  # [B, h, w]
            stage_maps.append(upsample_maps(-torch.exp(-nll) if self.probability else nll, self.image_size))
        maps = gaussian_blur(torch.stack(stage_maps).mean(0), self.sigma)
        return maps.flatten(1).amax(1), maps
