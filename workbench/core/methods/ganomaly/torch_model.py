"""GANomaly's networks (DCGAN-style, as in Akcay et al. 2018): torch modules only."""

from __future__ import annotations

import math

import torch
from torch import nn

from workbench.core.methods.components.inference import InferenceModule
from workbench.core.methods.components.ops import gaussian_blur
from workbench.core.methods.components.reconstruction import to_unit


def _levels(image_size: int) -> int:
    """Number of stride-2 stages from ``image_size`` down to 4 x 4."""
    n = int(round(math.log2(image_size / 4)))
    if n < 1 or 4 * 2 ** n != image_size:
        raise ValueError(f"GANomaly needs a power-of-two input size of at least 8; got {image_size}.")
    return n


class Encoder(nn.Module):
    """Stride-2 4 x 4 convolutions down to 4 x 4, then a 4 x 4 'valid' conv to ``nz`` x 1 x 1.

    Channels double per stage from ``ndf`` up to ``8 * ndf``. ``features`` returns the last
    4 x 4 feature map (the discriminator's features for feature matching).
    """

    def __init__(self, image_size: int, nz: int, ndf: int, nc: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        c = ndf
        for _ in range(_levels(image_size) - 1):
            c_out = min(2 * c, 8 * ndf)
            layers += [nn.Conv2d(c, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.LeakyReLU(0.2, inplace=True)]
            c = c_out
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, nz, 4, 1, 0, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class Decoder(nn.Module):
    """The mirror of :class:`Encoder`: ``nz`` x 1 x 1 -> image, transposed convolutions, tanh."""

    def __init__(self, image_size: int, nz: int, ngf: int, nc: int = 3) -> None:
        super().__init__()
        n = _levels(image_size)
        chans = [min(ngf * 2 ** i, 8 * ngf) for i in range(n)]  # channels per stage, fine to coarse
        c = chans[-1]
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
        for c_out in reversed(chans[:-1]):
            layers += [nn.ConvTranspose2d(c, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
            c = c_out
        layers += [nn.ConvTranspose2d(c, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class Generator(nn.Module):
    """Encoder -> decoder -> second encoder: returns ``(z, reconstruction, z_hat)``."""

    def __init__(self, image_size: int, nz: int, width: int) -> None:
        super().__init__()
        self.encoder1 = Encoder(image_size, nz, width)
        self.decoder = Decoder(image_size, nz, width)
        self.encoder2 = Encoder(image_size, nz, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encoder1(x)
        rec = self.decoder(z)
        return z, rec, self.encoder2(rec)


class Discriminator(nn.Module):
    """An :class:`Encoder` with one output logit; ``features`` feed the adversarial loss."""

    def __init__(self, image_size: int, width: int) -> None:
        super().__init__()
        self.net = Encoder(image_size, 1, width)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.net.features(x)
        return self.net.head(feats).flatten(), feats


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN initialisation GANomaly uses: conv weights N(0, 0.02), batch norm N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def to_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, H, W] -> [B * (H / patch) * (W / patch), C, patch, patch], row-major per image."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(-1, c, patch, patch)


def from_patches(p: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
    """The inverse of :func:`to_patches`: [B * n, C, patch, patch] -> [B, C, H, W]."""
    c, patch = p.shape[1], p.shape[-1]
    p = p.reshape(b, h // patch, w // patch, c, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return p.reshape(b, c, h, w)


class GanomalyModel(InferenceModule):
    """Inference as one module: map = smoothed |x - x_hat| of the reassembled reconstruction;
    score = its maximum, or the largest patch latent distance mean((z - z_hat)^2)."""

    def __init__(self, generator: Generator, discriminator: Discriminator, patch: int, sigma: float,
                 latent_score: bool) -> None:
        super().__init__()
        self.generator = generator
        # only needed to continue training (not by forward), but it is learned state too
        self.discriminator = discriminator
        self.patch, self.sigma, self.latent_score = patch, sigma, latent_score

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (latent distance per patch [B, n], reconstruction [B, 3, H, W])."""
        b, _, h, w = x.shape
        z, rec, z_hat = self.generator(to_patches(x, self.patch))
        dist = ((z - z_hat) ** 2).flatten(1).mean(1).reshape(b, -1)
        return dist, from_patches(rec, b, h, w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist, rec = self.reconstruct(x)
        maps = gaussian_blur((to_unit(x) - to_unit(rec)).abs().mean(1), self.sigma)
        scores = dist.amax(1) if self.latent_score else maps.flatten(1).amax(1)
        return scores, maps
