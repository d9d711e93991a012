"""DRAEM's two sub-networks (torch modules only), scaled down for CPU training.

Both start with a stride-2 convolution so that the heavy layers run at half resolution or
less; the reconstructive network redraws at full resolution, the discriminative one
predicts its mask at half resolution and upsamples it (DRAEM smooths the mask anyway).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.methods.components.inference import InferenceModule
from workbench.core.methods.components.ops import gaussian_blur
from workbench.core.methods.components.reconstruction import conv_block, decoder_stages, encoder_stages, up_block

LEVELS = 4  # stride-2 stages of both networks: image_size must be divisible by 16


class ReconstructiveNet(nn.Module):
    """Encoder-decoder without skip connections (as in DRAEM): it must redraw a good image
    from a corrupted one, and skips would let the corruption through."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        # three stride-2 stages: the code keeps 4 * width channels per 8 x 8 pixels, wide enough
        # to redraw detail (the network learns to remove defects by denoising, not by a bottleneck)
        chans = [width, 2 * width, 4 * width]
        self.encoder = nn.Sequential(*encoder_stages(chans))
        self.decoder = nn.Sequential(*decoder_stages(chans))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class DiscriminativeNet(nn.Module):
    """U-Net on [input, reconstruction] (6 channels) -> 2-channel logits (normal, anomalous)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [width, 2 * width, 4 * width, 8 * width]
        self.down = nn.ModuleList()
        c_in = 6
        for c in chans:
            self.down.append(nn.Sequential(conv_block(c_in, c, stride=2), conv_block(c, c)))
            c_in = c
        self.up = nn.ModuleList()
        for c_skip in reversed(chans[:-1]):
            self.up.append(nn.ModuleDict({"up": up_block(c_in, c_skip),
                                          "fuse": nn.Sequential(conv_block(2 * c_skip, c_skip),
                                                                conv_block(c_skip, c_skip))}))
            c_in = c_skip
        self.head = nn.Conv2d(c_in, 2, 3, padding=1)

    def forward(self, x: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x, rec], dim=1)
        skips = []
        for stage in self.down:
            h = stage(h)
            skips.append(h)
        for stage, skip in zip(self.up, reversed(skips[:-1])):
            h = stage["fuse"](torch.cat([stage["up"](h), skip], dim=1))
        logits = self.head(h)  # half resolution
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) of 2-class logits [B, 2, H, W] against a 0/1 mask [B, H, W]."""
    logp = F.log_softmax(logits, dim=1)
    logp_t = torch.where(target > 0.5, logp[:, 1], logp[:, 0])
    return (-(1 - logp_t.exp()) ** gamma * logp_t).mean()


class DraemModel(InferenceModule):
    """Inference as one module: mask probability (smoothed) and max of its average-pooled map."""

    def __init__(self, rec: ReconstructiveNet, disc: DiscriminativeNet, sigma: float, pool: int) -> None:
        super().__init__()
        self.reconstructive, self.discriminative, self.sigma = rec, disc, sigma
        self.pool = pool if pool % 2 else pool + 1  # odd, so pooling keeps the size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.discriminative(x, self.reconstructive(x))
        maps = gaussian_blur(torch.softmax(logits, dim=1)[:, 1], self.sigma)
        pooled = F.avg_pool2d(maps.unsqueeze(1), self.pool, stride=1, padding=self.pool // 2)
        return pooled.flatten(1).amax(1), maps
