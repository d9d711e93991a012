"""GANomaly (Akcay, Atapour-Abarghouei and Breckon, "GANomaly: Semi-Supervised Anomaly Detection
via Adversarial Training", ACCV 2018).

The generator is an encoder -> decoder -> encoder chain: it squeezes an image into a latent
vector z, redraws the image from z and encodes the redrawing again into z_hat. Trained on
good images only, with
- a contextual loss |x - x_hat|_1 (redraw the input, weight 50 in the paper),
- a latent loss ||z - z_hat||^2 (the redrawing must encode like the input, weight 1),
- an adversarial feature-matching loss ||f(x) - f(x_hat)||^2 on the discriminator's last
  feature map (weight 1),
while a discriminator learns to tell inputs from redrawings (binary cross-entropy). At test
time a defect cannot be redrawn, so the re-encoded z_hat drifts from z: the image score is
the latent distance mean((z - z_hat)^2). The anomaly map is the reconstruction residual
(mean absolute colour difference), Gaussian-smoothed; it is only indicative (GANomaly was
designed as an image-level detector).

Training: the generator step runs in the shared ``train_loop``. The discriminator step happens
inside the generator's ``step_loss`` closure, before the generator loss is computed, with its
own Adam optimiser on the reconstruction of the same batch (detached); as in the reference
implementation the discriminator is re-initialised when its loss collapses below 1e-5. Held-
back validation batches (early stopping) skip the discriminator step.

Deviations, forced by training from scratch on a few dozen images on a CPU: 128 px input and
a first-stage width of 16 channels (the paper: 32 px digits/X-ray crops, width 64); random
flips as augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods.components.reconstruction import ReconstructionModel, random_flips, seeded
from workbench.core.methods.components.training import TRAINING_PARAMS, ImageCache, train_method
from workbench.core.methods.ganomaly.torch_model import (Discriminator, GanomalyModel, Generator, dcgan_init,
                                                         to_patches)
from workbench.core.methods.schema import Param, with_defaults

D_COLLAPSE = 1e-5


class Ganomaly(ReconstructionModel):
    name = "ganomaly"
    title = "GANomaly"
    family = "Reconstruction"
    description = ("An encoder-decoder-encoder trained adversarially on good images; a defect makes the "
                   "re-encoded redrawing drift from the input's code. Image-level detector from scratch "
                   "(no pretrained network); its heat map is only a rough residual.")
    method_params = (
        Param("latent_dim", "int", 100, "Size of the latent code z. Smaller forces a coarser redrawing "
              "(defects drift more, but so does normal variation).", 8, 1024),
        Param("patch_size", "choice", "32", "GANomaly runs on square patches of this many pixels (the "
              "paper's 32 x 32 inputs) and the image score is the worst patch's; 'full' runs it on the "
              "whole image, which only notices defects that change the image as a whole.",
              choices=("16", "32", "64", "full")),
        Param("width", "int", 16, "Channels of the first stage of generator and discriminator (doubling "
              "per stage up to 8x). Wider learns more but trains slower.", 4, 128),
        Param("w_adversarial", "float", 1.0, "Weight of the adversarial feature-matching loss.", 0.0, 1000.0),
        Param("w_contextual", "float", 50.0, "Weight of the L1 reconstruction loss (the paper's 50).", 0.0, 1000.0),
        Param("w_latent", "float", 1.0, "Weight of the latent consistency loss ||z - z_hat||^2.", 0.0, 1000.0),
        Param("augment", "bool", True, "Random horizontal and vertical flips during training. Good for "
              "textures and symmetric parts; turn off when orientation matters."),
        Param("image_score", "choice", "residual", "'latent' = the paper's score, the worst patch's latent "
              "distance mean((z - z_hat)^2); 'residual' = the maximum of the smoothed residual map. On the "
              "sample data the latent distance ranks defects barely better than chance (see the module notes), "
              "the residual far better.", choices=("residual", "latent")),
        Param("smoothing_sigma", "float", 2.0, "Gaussian smoothing of the residual map in pixels.", 0.0, 32.0),
        *with_defaults(TRAINING_PARAMS, epochs=50, learning_rate=2e-4),
    )
    common_defaults = {"image_size": 128}
    tiny_params = {"image_size": 64, "epochs": 2, "width": 8, "latent_dim": 32}

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        patch = self.p.patch_size
        self.patch = self.image_size if patch == "full" else int(patch)
        if self.image_size % self.patch:
            raise ValueError(f"{self.title}: image_size {self.image_size} is not a multiple of patch_size {patch}.")

    def _new_module(self, tensors: dict[str, torch.Tensor] | None = None) -> GanomalyModel:
        """Generator and discriminator with their seeded DCGAN initialisation."""
        width = self.p.width

        def build():
            g = Generator(self.patch, self.p.latent_dim, width)
            d = Discriminator(self.patch, width)
            dcgan_init(g)
            dcgan_init(d)
            return g, d

        g, d = seeded(self.p.seed, build)
        return GanomalyModel(g.to(self.device).eval(), d.to(self.device).eval(), self.patch,
                             self.p.smoothing_sigma, self.p.image_score == "latent")

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        module = self._new_module()
        netg, netd = module.generator, module.discriminator
        cache = ImageCache(images, self.image_size, cancel, progress)
        generator = torch.Generator().manual_seed(self.p.seed)
        augment = self.p.augment
        lr = self.p.learning_rate
        opt_g = torch.optim.Adam(netg.parameters(), lr=lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(netd.parameters(), lr=lr, betas=(0.5, 0.999))
        w_adv, w_con, w_lat = self.p.w_adversarial, self.p.w_contextual, self.p.w_latent
        d_resets = 0
        patch, size = self.patch, self.image_size

        def step_loss(x: torch.Tensor) -> torch.Tensor:
            nonlocal d_resets
            training = netg.training
            if augment and training:
                x = random_flips(x, generator)
            if patch < size:  # patches on a randomly shifted grid (the whole grid when validating)
                if training:
                    offsets = torch.randint(0, patch, (x.shape[0], 2), generator=generator).tolist()
                    x = torch.cat([to_patches(img[None, :, oy:oy + size - patch, ox:ox + size - patch], patch)
                                   for img, (oy, ox) in zip(x, offsets)])
                else:
                    x = to_patches(x, patch)
            z, rec, z_hat = netg(x)
            if training:  # the discriminator's step, on this batch, before the generator's
                real, _ = netd(x)
                fake, _ = netd(rec.detach())
                loss_d = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                          + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))) / 2
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                if float(loss_d.detach()) < D_COLLAPSE:
                    dcgan_init(netd)
                    d_resets += 1
            adv = F.mse_loss(netd.features(rec), netd.features(x).detach())
            con = F.l1_loss(rec, x)
            lat = F.mse_loss(z_hat, z)
            return w_adv * adv + w_con * con + w_lat * lat

        history = train_method(self, step_loss, [netg, netd], opt_g, cache, cancel, progress)
        self.metadata["loss_history"] = history.train_loss
        self.metadata["discriminator_resets"] = d_resets
        self._set_module(module)

    def _reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.reconstruct(x)[1]
