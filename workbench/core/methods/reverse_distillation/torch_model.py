"""RD4AD torch modules: the one-class bottleneck embedding (OCBE) and the reverse decoder.

Shapes for the default encoder stages (1, 2, 3) of EfficientNet-Lite0 at input S: the
encoder gives 24 x S/4, 40 x S/8 and 112 x S/16 maps. OCBE brings every stage to S/16 with
strided convolutions (multi-scale feature fusion), concatenates them and compresses the
result with a strided residual block into one compact S/32 embedding. The decoder mirrors
the encoder: each stage upsamples by 2 (transposed convolution), refines with a residual
block, and a 1x1 head predicts the encoder's features of that stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.methods.components.inference import InferenceModule
from workbench.core.methods.components.ops import gaussian_blur, upsample_maps


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """ResNet basic block (optionally strided, with a projected shortcut when shapes change)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride), conv_bn(cout, cout, 3, 1, act=False))
        self.short = (nn.Identity() if cin == cout and stride == 1
                      else conv_bn(cin, cout, 1 if stride == 1 else 3, stride, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.short(x))


class OneClassBottleneck(nn.Module):
    """Multi-scale feature fusion then one-class embedding (paper Sec. 3.2)."""

    def __init__(self, channels: list[int], strides: list[int], embed_dim: int) -> None:
        super().__init__()
        coarsest, width = strides[-1], channels[-1]
        self.fuse = nn.ModuleList()
        for c, s in zip(channels, strides):
            steps: list[nn.Module] = []
            cin = c
            while s < coarsest:
                steps.append(conv_bn(cin, width, 3, 2))
                cin, s = width, s * 2
            steps.append(conv_bn(cin, width, 1, 1))
            self.fuse.append(nn.Sequential(*steps))
        self.embed = ResBlock(width * len(channels), embed_dim, stride=2)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.embed(torch.cat([f(x) for f, x in zip(self.fuse, feats)], dim=1))


class ReverseDecoder(nn.Module):
    """Embedding -> predicted encoder features, coarsest stage first internally, returned
    in the encoder's order (finest first)."""

    def __init__(self, channels: list[int], strides: list[int], embed_dim: int, width: int) -> None:
        super().__init__()
        self.ups, self.blocks, self.heads = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin, current = embed_dim, strides[-1] * 2
        for c, s in zip(reversed(channels), reversed(strides)):
            hidden = max(2 * c, width * s // strides[-1])  # halves with every finer stage
            up = []
            while current > s:
                up += [nn.ConvTranspose2d(cin, hidden, 2, 2, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)]
                cin, current = hidden, current // 2
            self.ups.append(nn.Sequential(*up))
            self.blocks.append(ResBlock(cin, hidden))
            self.heads.append(nn.Conv2d(hidden, c, 1))
            cin = hidden

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for up, block, head in zip(self.ups, self.blocks, self.heads):
            z = block(up(z))
            outs.append(head(z))
        return outs[::-1]


def cosine_distances(encoder: list[torch.Tensor], decoder: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per stage, 1 - cos(encoder, decoder) at every position -> [B, h, w] each."""
    return [1.0 - F.cosine_similarity(e, d, dim=1) for e, d in zip(encoder, decoder)]


def rd_loss(encoder: list[torch.Tensor], decoder: list[torch.Tensor]) -> torch.Tensor:
    """Sum over stages of the mean per-position cosine distance (paper Eq. 2)."""
    return sum(d.mean() for d in cosine_distances(encoder, decoder))  # type: ignore[return-value]


class RdModel(InferenceModule):
    """Encoder (the frozen backbone, not saved) -> OCBE -> decoder -> (scores[B], maps[B, S, S])."""

    frozen = ("encoder",)

    def __init__(self, encoder: nn.Module, bottleneck: nn.Module, decoder: nn.Module, image_size: int,
                 sigma: float) -> None:
        super().__init__()
        self.encoder, self.bottleneck, self.decoder = encoder, bottleneck, decoder
        self.image_size, self.sigma = image_size, sigma

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.encoder(x)
        recon = self.decoder(self.bottleneck(feats))
        maps = [upsample_maps(d, self.image_size) for d in cosine_distances(feats, recon)]
        out = maps[0]
        for m in maps[1:]:
            out = out + m
        out = gaussian_blur(out, self.sigma)
        return out.flatten(1).amax(1), out
