"""CFlow-AD (Gudovskiy et al., "CFLOW-AD: Real-Time Unsupervised Anomaly Detection with
Localization via Conditional Normalizing Flows", WACV 2022; arXiv:2107.12571).

Idea: every feature vector ("fibre") of a frozen backbone stage is modelled by a
*conditional* normalizing flow whose condition is a 2D sinusoidal positional encoding of the
fibre's location, so one small fully connected flow per stage learns position-dependent
distributions of normal features. Training maximises the likelihood of randomly sampled
fibres; at test time every fibre's log-likelihood gives the anomaly map.

As in the paper's code: per stage 8 coupling blocks with fully connected subnets
(linear -> ReLU -> linear, hidden = 2 x input), soft clamping 1.9, a 128-channel positional
encoding, loss ``-log sigmoid(log p(x) / C)`` on fibre batches, and the map
``sum_stages upsample(exp(log p / C - max))``, turned around so that higher = more anomalous
(``n_stages - sum``); the image score is the maximum of the map.

Deviations (offline / 2-core CPU / our shared trainer):
- backbone: the embedded EfficientNet-Lite0, stages 1,2,3 (strides 4, 8, 16) in place of
  WideResNet50 / MobileNetV3.
- the paper subtracts the maximum log-likelihood *of the test set* per stage before
  exponentiating, which makes a score depend on the other images in the batch. We subtract
  the per-stage maximum over the *training* fibres, stored with the model, so scores are a
  fixed function of one image (and the model exports to ONNX).
- the shared ``train_loop`` takes one optimiser step per image batch, so each step samples
  ``fibers_per_stage`` random fibres of every stage of the batch (the paper takes one step
  per 256-fibre slice of a shuffled batch); Adam at a higher learning rate and more epochs
  make up for the fewer steps. The frozen backbone's features are computed once.
- ``anomaly_map = "log_likelihood"`` offers the un-exponentiated ``max - log p / C``
  averaged over stages, which does not saturate for strong anomalies; optional smoothing.
- the coupling blocks are our own (see :mod:`workbench.core.methods.components.flows`)
  instead of FrEIA's AllInOneBlock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.methods.cflow.torch_model import CFlowModel, CFlowNet, Shape
from workbench.core.methods.components.feature_cache import FeatureCache, FlowMethod
from workbench.core.methods.components.training import TRAINING_PARAMS, train_method
from workbench.core.methods.schema import Param


class CFlow(FlowMethod):
    name = "cflow"
    title = "CFlow-AD"
    family = "Normalizing flow"
    description = ("Models the likelihood of every backbone feature vector with a normalizing flow "
                   "conditioned on its position, and flags unlikely ones. Position-aware (suits aligned "
                   "parts), small model, single forward pass; needs a short training run.")
    method_params = (
        Param("layers", "choice", "1,2,3", "Backbone stages that get a flow. Stage 1 (stride 4) localises "
              "small defects best but is the slowest.", choices=("1,2", "2,3", "1,2,3")),
        Param("coupling_blocks", "int", 8, "Coupling blocks per flow. More models the feature "
              "distribution more exactly but trains and runs slower.", 1, 32),
        Param("condition_dim", "int", 128, "Size of the positional encoding given to the flow as "
              "condition (multiple of 4). Larger resolves positions more finely.", 4, 512),
        Param("clamp", "float", 1.9, "Soft limit of each coupling's log-scale. Lower is more stable, "
              "higher is more expressive.", 0.1, 10.0),
        Param("fibers_per_stage", "int", 2048, "Feature vectors sampled per stage for each training "
              "step. More gives smoother gradients at proportionally more time per step.", 64, 65536),
        Param("anomaly_map", "choice", "log_likelihood", "'probability' is the paper's exp(log p - max), "
              "summed over stages (saturates for strong anomalies); 'log_likelihood' uses max - log p "
              "directly and keeps ranking strong anomalies.", choices=("probability", "log_likelihood")),
        Param("smoothing_sigma", "float", 4.0, "Gaussian smoothing of the anomaly map in pixels "
              "(0 = off, as in the paper). Smooths noise at the cost of very small defects.", 0.0, 32.0),
    ) + TRAINING_PARAMS

    tiny_params = {"image_size": 64, "epochs": 3, "coupling_blocks": 2, "fibers_per_stage": 256,
                   "learning_rate": 3e-3}

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        if self.p.condition_dim % 4:
            raise ValueError(f"Parameter 'condition_dim' must be a multiple of 4; got {self.p.condition_dim}.")

    def _build(self, shapes: Sequence[Shape]) -> CFlowNet:
        p = self.p
        return CFlowNet(shapes, p.coupling_blocks, p.condition_dim, p.clamp, p.seed).to(self.device)

    def _wrap(self, net: CFlowNet) -> CFlowModel:
        return CFlowModel(self.extractor, net, self.image_size, self.p.anomaly_map, self.p.smoothing_sigma)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        batch_size = self.p.batch_size
        cache = self._features(images, progress, cancel)
        net = self._build(cache.shapes)
        _standardise(net, cache, batch_size, cancel)
        optimizer = torch.optim.Adam(net.parameters(), lr=self.p.learning_rate)
        n_fibres = self.p.fibers_per_stage

        def step_loss(index: torch.Tensor) -> torch.Tensor:
            loss = torch.zeros((), device=self.device)
            for k, f in enumerate(cache.features(index)):
                b, c, h, w = f.shape
                fibres = f.permute(0, 2, 3, 1).reshape(-1, c)
                pick = torch.randperm(fibres.shape[0])[:n_fibres].to(self.device)
                cond = net.positions(k)[pick % (h * w)]
                log_p = net.log_likelihood(k, fibres[pick], cond)
                loss = loss + -F.logsigmoid(log_p).mean()
            return loss

        history = train_method(self, step_loss, [net], optimizer, cache, cancel, progress)
        net.eval()
        report = make_reporter(progress, "normalise", len(cache))
        best = torch.full((len(cache.shapes),), -math.inf, device=self.device)
        with torch.inference_mode():
            for start in range(0, len(cache), batch_size):
                cancel.raise_if_cancelled()
                index = torch.arange(start, min(start + batch_size, len(cache)))
                for k, log_p in enumerate(net.stage_log_likelihoods(cache.features(index))):
                    best[k] = torch.maximum(best[k], log_p.max())
                report(int(index[-1]) + 1)
        net.log_p_max.copy_(best)
        self._finish(net, history)


@torch.inference_mode()
def _standardise(net: CFlowNet, cache: FeatureCache, batch_size: int, cancel: CancelToken) -> None:
    """Set each stage's per-channel mean and std from all training fibres (float64 sums)."""
    sums: list[torch.Tensor] = []
    squares: list[torch.Tensor] = []
    count = 0
    for start in range(0, len(cache), batch_size):
        cancel.raise_if_cancelled()
        feats = cache.features(torch.arange(start, min(start + batch_size, len(cache))))
        for k, f in enumerate(feats):
            f = f.double().transpose(0, 1).flatten(1)  # [C, B*h*w]
            if start == 0:
                sums.append(f.sum(1))
                squares.append(f.pow(2).sum(1))
            else:
                sums[k] += f.sum(1)
                squares[k] += f.pow(2).sum(1)
        count += len(feats[0])
    for k, (s, sq) in enumerate(zip(sums, squares)):
        n = count * cache.shapes[k][1] * cache.shapes[k][2]
        mean = s / n
        std = (sq / n - mean.pow(2)).clamp_min(0).sqrt().clamp_min(1e-3)
        getattr(net, f"mean{k}").copy_(mean.float())
        getattr(net, f"std{k}").copy_(std.float())
