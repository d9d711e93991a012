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
- the coupling blocks are our own (see :mod:`workbench.core.methods.fastflow.coupling`)
  instead of FrEIA's AllInOneBlock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.methods.fastflow.coupling import AffineCoupling, Flow, fc_subnet, gaussian_log_likelihood
from workbench.core.methods.fastflow.features import FeatureCache, FlowMethod
from workbench.core.methods.ops import gaussian_blur, upsample_maps
from workbench.core.methods.schema import Param
from workbench.core.methods.trainer import TRAINING_PARAMS, train_loop

Shape = tuple[int, int, int]


def positional_encoding_2d(dim: int, height: int, width: int) -> torch.Tensor:
    """The paper's 2D sinusoidal encoding [dim, h, w]: half the channels encode x, half y."""
    if dim % 4:
        raise ValueError(f"The positional encoding size must be a multiple of 4, got {dim}.")
    pe = torch.zeros(dim, height, width)
    half = dim // 2
    div = torch.exp(torch.arange(0.0, half, 2) * -(math.log(1e4) / half))
    pos_w = torch.arange(0.0, width).unsqueeze(1) * div  # [w, half/2]
    pos_h = torch.arange(0.0, height).unsqueeze(1) * div  # [h, half/2]
    pe[0:half:2] = torch.sin(pos_w).T.unsqueeze(1).expand(-1, height, -1)
    pe[1:half:2] = torch.cos(pos_w).T.unsqueeze(1).expand(-1, height, -1)
    pe[half::2] = torch.sin(pos_h).T.unsqueeze(2).expand(-1, -1, width)
    pe[half + 1::2] = torch.cos(pos_h).T.unsqueeze(2).expand(-1, -1, width)
    return pe


class CFlowNet(nn.Module):
    """One conditional fully connected flow per stage, on fibres with positional conditions."""

    def __init__(self, shapes: Sequence[Shape], coupling_blocks: int, condition_dim: int, clamp: float,
                 seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.flows = nn.ModuleList(
            Flow([AffineCoupling(c, fc_subnet(2.0), clamp, cond_channels=condition_dim, generator=generator)
                  for _ in range(coupling_blocks)])
            for c, _, _ in shapes)
        for k, (_, h, w) in enumerate(shapes):  # a function of the shapes: not saved
            pe = positional_encoding_2d(condition_dim, h, w).flatten(1).T.contiguous()  # [h*w, P]
            self.register_buffer(f"pos{k}", pe, persistent=False)
        for k, (c, _, _) in enumerate(shapes):  # per-channel standardisation of the fibres
            self.register_buffer(f"mean{k}", torch.zeros(c))
            self.register_buffer(f"std{k}", torch.ones(c))
        # per-stage maximum of log p / C over the training fibres (the map's normaliser)
        self.register_buffer("log_p_max", torch.zeros(len(shapes)))

    def positions(self, k: int) -> torch.Tensor:
        return getattr(self, f"pos{k}")

    def log_likelihood(self, k: int, fibres: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """log p(x) / C of fibres [N, C] of stage ``k`` given their encodings [N, P] (up to the
        constant log-determinant of the standardisation, which the map's max-shift cancels)."""
        fibres = (fibres - getattr(self, f"mean{k}")) / getattr(self, f"std{k}")
        z, log_det = self.flows[k](fibres, cond)
        return gaussian_log_likelihood(z, log_det) / fibres.shape[1]

    def stage_log_likelihoods(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Features [B, C, h, w] per stage -> log p / C maps [B, h, w] per stage."""
        out = []
        for k, f in enumerate(feats):
            b, c, h, w = f.shape
            fibres = f.permute(0, 2, 3, 1).reshape(-1, c)
            pos = self.positions(k)
            cond = pos.unsqueeze(0).expand(b, -1, -1).reshape(-1, pos.shape[1])
            out.append(self.log_likelihood(k, fibres, cond).reshape(b, h, w))
        return out


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

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        if int(self.params["condition_dim"]) % 4:
            raise ValueError(f"Parameter 'condition_dim' must be a multiple of 4; got {self.params['condition_dim']}.")

    def _build(self, shapes: Sequence[Shape]) -> CFlowNet:
        p = self.params
        return CFlowNet(shapes, int(p["coupling_blocks"]), int(p["condition_dim"]), float(p["clamp"]),
                        int(p["seed"])).to(self.device)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        mean, std = self.normalization
        batch_size = int(self.params["batch_size"])
        cache = FeatureCache(self.extractor, images, self.image_size, mean, std, self.device, cancel,
                             progress, batch_size=batch_size)
        net = self._build(cache.shapes)
        _standardise(net, cache, batch_size, cancel)
        optimizer = torch.optim.Adam(net.parameters(), lr=float(self.params["learning_rate"]))
        n_fibres = int(self.params["fibers_per_stage"])

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

        history = train_loop(step_loss, [net], optimizer, cache, mean=mean, std=std, device=self.device,
                             epochs=int(self.params["epochs"]), batch_size=batch_size,
                             seed=int(self.params["seed"]), cancel=cancel, progress=progress,
                             early_stopping=int(self.params["early_stopping"]))
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
        self.net = net
        self._record_history(history)

    def export_module(self) -> nn.Module:
        assert self.net is not None
        return CFlowInference(self.extractor, self.net, self.image_size, self.params["anomaly_map"],
                              float(self.params["smoothing_sigma"]))



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


class CFlowInference(nn.Module):
    """Backbone -> conditional flows -> anomaly map and image score (predict and ONNX export)."""

    def __init__(self, extractor: nn.Module, net: CFlowNet, image_size: int, anomaly_map: str,
                 sigma: float) -> None:
        super().__init__()
        self.extractor, self.net = extractor, net
        self.image_size, self.probability, self.sigma = image_size, anomaly_map == "probability", sigma

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stage_maps = []
        log_ps = self.net.stage_log_likelihoods(self.extractor(x))
        for k, log_p in enumerate(log_ps):
            shifted = log_p - self.net.log_p_max[k]
            stage_maps.append(upsample_maps(-torch.exp(shifted) if self.probability else -shifted, self.image_size))
        maps = torch.stack(stage_maps).sum(0) if self.probability else torch.stack(stage_maps).mean(0)
        if self.probability:
            maps = maps + len(log_ps)  # n_stages - sum of probabilities
        maps = gaussian_blur(maps, self.sigma)
        return maps.flatten(1).amax(1), maps
