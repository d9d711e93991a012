"""The convolutional autoencoder of the SSIM-AE method (torch module only)."""

from __future__ import annotations

import torch
from torch import nn

from workbench.core.methods.reconstruction import conv_block, up_block

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
        enc: list[nn.Module] = []
        c_in = 3
        for c in chans:
            enc += [conv_block(c_in, c, stride=2), conv_block(c, c)]
            c_in = c
        enc += [nn.Conv2d(c_in, latent_channels, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [conv_block(latent_channels, chans[-1])]
        c_in = chans[-1]
        for c in reversed(chans[:-1]):
            dec += [up_block(c_in, c), conv_block(c, c)]
            c_in = c
        # the full-resolution stage is one output conv: most of the compute sits there
        dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, 3, 3, padding=1), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
