"""The convolutional autoencoder of the SSIM-AE method (torch module only)."""

from __future__ import annotations

import torch
from torch import nn

from workbench.core.methods.components.inference import InferenceModule
from workbench.core.methods.components.ops import gaussian_blur
from workbench.core.methods.components.reconstruction import (conv_block, decoder_stages, encoder_stages, ssim_map,
                                                              to_unit, topk_mean)

DOWNSAMPLINGS = 4  # the code is image_size / 16 on a side


class ConvAutoencoder(nn.Module):
    """Encoder of four stride-2 stages to a narrow spatial code, mirrored decoder, tanh output.

    Bergmann et al. use the same stride-2 / stride-1 pattern down to 8 x 8 at 128 px; the
    code here stays spatial (``latent_channels`` per cell) so one network serves any image
    size, and its width is what keeps it from copying defects through.
    """

    def __init__(self, width: int = 32, latent_channels: int = 16) -> None:
        super().__init__()
        w = width
        chans = [w, 2 * w, 4 * w, 4 * w]
        self.encoder = nn.Sequential(*encoder_stages(chans), nn.Conv2d(chans[-1], latent_channels, 1))
        dec: list[nn.Module] = [conv_block(latent_channels, chans[-1]), *decoder_stages(chans)]
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AutoencoderModel(InferenceModule):
    """Inference as one module: reconstruction -> residual map -> smoothed map and top-k score."""

    def __init__(self, net: ConvAutoencoder, l2_weight: float, sigma: float, topk: float) -> None:
        super().__init__()
        self.net, self.l2_weight, self.sigma, self.topk = net, l2_weight, sigma, topk

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = to_unit(x)
        b = to_unit(self.net(x)).clamp(0, 1)
        maps = (1 - ssim_map(a, b)) + self.l2_weight * ((a - b) ** 2).mean(1)
        maps = gaussian_blur(maps, self.sigma)
        return topk_mean(maps, self.topk), maps
