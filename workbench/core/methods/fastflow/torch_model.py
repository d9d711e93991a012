"""FastFlow torch modules: the per-stage LayerNorm + 2D flow network, its loss, and the
inference module (backbone -> flows -> anomaly map and image score)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from workbench.core.methods.components.flows import FlowInference, AffineCoupling, Flow, conv_subnet
from workbench.core.methods.components.ops import gaussian_blur, upsample_maps

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


class FastFlowModel(FlowInference):
    """Backbone -> flows -> anomaly map and image score."""

    net: FastFlowNet

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stage_maps = []
        for z, _ in self.net(self.extractor(x)):
            nll = 0.5 * z.pow(2).mean(1)  # [B, h, w]
            stage_maps.append(upsample_maps(-torch.exp(-nll) if self.probability else nll, self.image_size))
        maps = gaussian_blur(torch.stack(stage_maps).mean(0), self.sigma)
        return maps.flatten(1).amax(1), maps
