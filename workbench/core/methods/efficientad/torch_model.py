"""EfficientAD torch modules: patch description networks, the autoencoder, the losses and the
single-pass inference module.

All sizes follow the paper's EfficientAD-S with two knobs scaled for CPUs: ``width`` (the
paper's 128; the middle layers use 2 x width) and the input size S. Without padding a PDN maps
an S x S image to (S/4 - 8)^2 feature vectors, each describing one 33 x 33 patch; the map is
padded back to S/4 and upsampled to S, as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.methods.components.inference import InferenceModule
from workbench.core.methods.components.ops import gaussian_blur, upsample_maps


class PatchDescriptionNetwork(nn.Module):
    """EfficientAD-S PDN: four convolutions, two average poolings, 33 x 33 receptive field."""

    def __init__(self, out_channels: int, width: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2),
            nn.Conv2d(width, 2 * width, 4), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2),
            nn.Conv2d(2 * width, 2 * width, 3), nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, out_channels, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def pdn_output_size(image_size: int) -> int:
    return image_size // 4 - 8


class AutoEncoder(nn.Module):
    """The paper's autoencoder: six strided convolutions to a 1 x 1 x ``latent`` code, then
    eight upsample-and-convolve steps back to the PDN's output grid with ``out_channels``.
    ``width`` is the paper's 64 (its first two layers use half); it scales with the PDN width."""

    def __init__(self, out_channels: int, image_size: int, width: int = 64, latent: int = 64) -> None:
        super().__init__()
        enc: list[nn.Module] = []
        cin, size = 3, image_size
        half = max(8, width // 2)
        for cout in (half, half, width, width, width):
            enc += [nn.Conv2d(cin, cout, 4, 2, 1), nn.ReLU(inplace=True)]
            cin, size = cout, size // 2
        enc.append(nn.Conv2d(cin, latent, size))  # the remaining size x size -> 1 x 1
        self.encoder = nn.Sequential(*enc)
        # intermediate sizes as in the paper for 256 px (3, 8, 15, 32, 63, 127), scaled to S
        self.sizes = [max(2, round(image_size * f / 256)) for f in (3, 8, 15, 32, 63, 127)]
        self.out_size = pdn_output_size(image_size)
        self.dec = nn.ModuleList()
        cin = latent
        for _ in self.sizes:
            self.dec.append(nn.Sequential(nn.Conv2d(cin, width, 4, 1, 2), nn.ReLU(inplace=True), nn.Dropout(0.2)))
            cin = width
        self.dec_tail = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(inplace=True),
                                      nn.Conv2d(width, out_channels, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        for size, layer in zip(self.sizes, self.dec):
            z = layer(F.interpolate(z, size=(size, size), mode="bilinear", align_corners=False))
        z = F.interpolate(z, size=(self.out_size, self.out_size), mode="bilinear", align_corners=False)
        return self.dec_tail(z)


@torch.no_grad()
def fit_readout(net: PatchDescriptionNetwork, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                channels: slice | None = None, ridge: float = 1e-3) -> float:
    """Set the PDN's last convolution (or its output ``channels``) to the ridge least-squares
    map from the features of the layers before it to ``targets``; returns R^2 on the data.

    The last convolution is linear in the 4 x 4 windows of the trunk's features, so its
    optimum for the current trunk has a closed form. Even a freshly initialised trunk
    explains a good share of the targets this way, which a few hundred gradient steps from a
    random start do not reach (the CPU budget allows hundreds, the paper used 60,000).
    ``ridge`` is relative to the mean feature energy; ``batches`` yield (images, targets)
    with targets shaped like the network's output.
    """
    conv = net.net[-1]
    trunk = net.net[:-1]
    sel = channels or slice(0, conv.out_channels)
    gram = rhs = None
    y_sum = y_sq = None
    rows = 0
    for x, target in batches:
        a = F.unfold(trunk(x), conv.kernel_size)  # [B, C_in * kh * kw, L]
        a = a.transpose(1, 2).reshape(-1, a.shape[1])
        a = torch.cat([a, torch.ones(len(a), 1, dtype=a.dtype, device=a.device)], 1)
        y = target.float().flatten(2).transpose(1, 2).reshape(-1, target.shape[1])
        g, r = (a.T @ a).double(), (a.T @ y).double()
        gram, rhs = (g, r) if gram is None else (gram + g, rhs + r)
        s1, s2 = y.double().sum(0), y.double().pow(2).sum(0)
        y_sum, y_sq = (s1, s2) if y_sum is None else (y_sum + s1, y_sq + s2)
        rows += len(a)
    if gram is None:
        raise ValueError("fit_readout needs at least one batch")
    d = gram.shape[0] - 1
    energy = gram.diagonal()[:d].mean().clamp_min(1e-12)  # > 0 even if every feature is dead
    penalty = ridge * energy * torch.eye(d + 1, dtype=gram.dtype, device=gram.device)
    penalty[d, d] = 0.0  # no penalty on the bias
    w = torch.linalg.solve(gram + penalty, rhs)  # [D + 1, C]
    conv.weight[sel] = w[:d].T.reshape(-1, *conv.weight.shape[1:]).to(conv.weight.dtype)
    conv.bias[sel] = w[d].to(conv.bias.dtype)
    # residual sum of squares from the normal equations: y'y - 2 w'A'y + w'A'A w
    rss = y_sq.sum() - 2 * (w * rhs).sum() + (w * (gram @ w)).sum()
    tss = y_sq.sum() - y_sum.pow(2).sum() / rows
    return float(1.0 - rss / tss.clamp_min(1e-12))


def hard_feature_loss(teacher: torch.Tensor, student: torch.Tensor, quantile: float) -> torch.Tensor:
    """Mean of the squared differences at or above their ``quantile`` (paper Eq. for L_hard).

    Implemented as the mean of the top ``ceil((1 - q) * n)`` elements (torch.quantile refuses
    inputs over 16M elements).
    """
    d = (teacher - student).pow(2).flatten()
    k = max(1, int(math.ceil((1.0 - quantile) * d.numel())))
    return d.topk(k, sorted=False).values.mean()


class EfficientAdModel(InferenceModule):
    """Teacher, student and autoencoder -> (scores[B], maps[B, S, S]) in one pass; ONNX-exportable.

    Buffers hold the teacher's channel mean/std and the map normalisation quantiles; no
    backbone is involved at inference, so everything in the module is saved.
    """

    def __init__(self, teacher: nn.Module, student: nn.Module, autoencoder: nn.Module,
                 teacher_mean: torch.Tensor, teacher_std: torch.Tensor, quantiles: torch.Tensor, image_size: int,
                 sigma: float = 0.0) -> None:
        super().__init__()
        self.teacher, self.student, self.autoencoder = teacher, student, autoencoder
        self.register_buffer("teacher_mean", teacher_mean.float().clone())  # [C]
        self.register_buffer("teacher_std", teacher_std.float().clone())  # [C]
        self.register_buffer("quantiles", quantiles.float().clone())  # q_a_st, q_b_st, q_a_ae, q_b_ae
        self.image_size = image_size
        self.sigma = sigma
        self.channels = int(teacher_mean.numel())

    def raw_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Student-teacher and student-autoencoder maps [B, h, w] before normalisation."""
        t = (self.teacher(x) - self.teacher_mean.view(1, -1, 1, 1)) / self.teacher_std.view(1, -1, 1, 1)
        s = self.student(x)
        a = self.autoencoder(x)
        map_st = (t - s[:, :self.channels]).pow(2).mean(1)
        map_ae = (a - s[:, self.channels:]).pow(2).mean(1)
        return map_st, map_ae

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        map_st, map_ae = self.raw_maps(x)
        q = self.quantiles
        map_st = 0.1 * (map_st - q[0]) / (q[1] - q[0])
        map_ae = 0.1 * (map_ae - q[2]) / (q[3] - q[2])
        amap = F.pad(0.5 * map_st + 0.5 * map_ae, (4, 4, 4, 4))
        amap = gaussian_blur(upsample_maps(amap, self.image_size), self.sigma)
        return amap.flatten(1).amax(1), amap
