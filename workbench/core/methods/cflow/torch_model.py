"""CFlow-AD torch modules: the 2D positional encoding, the per-stage conditional flows on
feature fibres, and the inference module (backbone -> flows -> anomaly map and image score)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from workbench.core.methods.components.flows import FlowInference, AffineCoupling, Flow, fc_subnet, gaussian_log_likelihood
from workbench.core.methods.components.ops import gaussian_blur, upsample_maps

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


class CFlowModel(FlowInference):
    """Backbone -> conditional flows -> anomaly map and image score."""

    net: CFlowNet

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
