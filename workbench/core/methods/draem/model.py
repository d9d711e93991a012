"""DRAEM (Zavrtanik, Kristan and Skočaj, "DRAEM - A Discriminatively Trained Reconstruction
Embedding for Surface Anomaly Detection", ICCV 2021).

Instead of hoping that a reconstruction error marks defects, DRAEM learns to segment them
from simulated ones (:mod:`.synthetic`: Perlin-noise masks filled with foreign texture):
- a reconstructive network redraws the clean image from the corrupted one (L2 + SSIM loss),
- a discriminative U-Net sees [input, reconstruction] side by side and outputs the defect
  mask directly (focal loss against the simulated mask).
Both train jointly (the segmentation loss also flows into the reconstructive network). At
test time the map is the softmax probability of the defect channel, smoothed, and the image
score is the maximum of the average-pooled map (pool size ``score_pool``).

Deviations, forced by working offline on a CPU with a few dozen images:
- No DTD texture set offline: anomaly textures come from the training images themselves,
  strongly augmented (colour, rotation, shifted and shuffled patches; see :mod:`.synthetic`).
- Networks a few times narrower than the paper's (base width 16 instead of 128/64), both
  starting with a stride-2 stage; the discriminative network predicts at half resolution
  and upsamples bilinearly. 128 px input, 300 epochs of 64 px crops with Adam at 1e-3 instead of 700
  epochs of whole images at 1e-4 (100 epochs left the washer at 0.79 image AUROC; 300 give
  0.93-0.99 across seeds and fit in about 3-5 minutes on 2 CPU cores); random flips on the clean images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods.components.reconstruction import (PIXEL_MEAN, PIXEL_STD, ReconstructionModel,
                                                              random_flips, seeded, ssim_map, to_unit)
from workbench.core.methods.components.training import TRAINING_PARAMS, ImageCache, train_method
from workbench.core.methods.draem.synthetic import AnomalySynthesizer
from workbench.core.methods.draem.torch_model import (LEVELS, DiscriminativeNet, DraemModel, ReconstructiveNet,
                                                      focal_loss)
from workbench.core.methods.schema import Param, with_defaults


class Draem(ReconstructionModel):
    name = "draem"
    title = "DRAEM"
    family = "Reconstruction"
    description = ("Learns to segment defects from simulated ones (noise-shaped patches of foreign "
                   "texture): a reconstruction network redraws the clean image and a second network "
                   "compares both and outputs the defect mask. No pretrained network; sharp maps.")
    method_params = (
        Param("reconstruction_width", "int", 16, "Channels of the first stage of the reconstructive "
              "network (doubling per stage). Wider redraws more detail but trains slower.", 4, 128),
        Param("discriminative_width", "int", 16, "Channels of the first stage of the discriminative "
              "U-Net (doubling per stage). Wider segments finer defects but trains slower.", 4, 128),
        Param("anomaly_probability", "float", 0.5, "Share of training images that get a simulated "
              "defect. Higher learns defects faster but sees fewer clean examples.", 0.05, 1.0),
        Param("train_crop", "int", 64, "Train on random square crops of this many pixels (0 = whole "
              "images). Smaller crops make cheaper steps, so more of them fit in the same time; too small "
              "loses the context needed to tell a defect from normal structure.", 0, 1024),
        Param("augment", "bool", True, "Random horizontal and vertical flips of the clean images. Good "
              "for textures and symmetric parts; turn off when orientation matters."),
        Param("smoothing_sigma", "float", 2.0, "Gaussian smoothing of the mask probability in pixels.",
              0.0, 32.0),
        Param("score_pool", "int", 11, "Image score = max of the map averaged over this many pixels "
              "square (the paper: 21 at 256 px). Larger ignores specks, smaller finds tiny defects.", 1, 255),
        *with_defaults(TRAINING_PARAMS, epochs=300),
    )
    common_defaults = {"image_size": 128}
    tiny_params = {"image_size": 64, "epochs": 2, "reconstruction_width": 8, "discriminative_width": 8}

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        if self.image_size % 2 ** LEVELS:
            raise ValueError(f"{self.title} needs an image_size divisible by {2 ** LEVELS}; got {self.image_size}.")

    def _new_module(self, tensors: dict[str, torch.Tensor] | None = None) -> DraemModel:
        """Both networks with their seeded initialisation."""
        rec, disc = seeded(self.p.seed, lambda: (ReconstructiveNet(self.p.reconstruction_width),
                                                 DiscriminativeNet(self.p.discriminative_width)))
        return DraemModel(rec.to(self.device).eval(), disc.to(self.device).eval(), self.p.smoothing_sigma,
                          self.p.score_pool)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        module = self._new_module()
        rec_net, disc_net = module.reconstructive, module.discriminative
        cache = ImageCache(images, self.image_size, cancel, progress)
        seed = self.p.seed
        generator = torch.Generator().manual_seed(seed)
        synthesizer = AnomalySynthesizer(
            cache.data, np.random.default_rng(seed), probability=self.p.anomaly_probability,
            max_scale=max(0, int(math.log2(self.image_size)) - 3))
        augment = self.p.augment
        mean = torch.tensor(PIXEL_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(PIXEL_STD, device=self.device).view(1, 3, 1, 1)

        crop = self.p.train_crop
        crop = crop if 0 < crop < self.image_size else 0

        def step_loss(x: torch.Tensor) -> torch.Tensor:
            if augment and rec_net.training:
                x = random_flips(x, generator)
            clean = to_unit(x)
            altered, masks = synthesizer.batch(clean.permute(0, 2, 3, 1).cpu().numpy())
            altered_t = torch.from_numpy(altered).to(self.device).permute(0, 3, 1, 2)
            masks_t = torch.from_numpy(masks).to(self.device)
            if crop:  # the same random crop of clean image, altered image and mask
                offsets = torch.randint(0, self.image_size - crop + 1, (x.shape[0], 2), generator=generator)
                clean, altered_t, masks_t = (
                    torch.stack([t[..., oy:oy + crop, ox:ox + crop] for t, (oy, ox) in zip(ts, offsets.tolist())])
                    for ts in (clean, altered_t, masks_t))
            x_in = (altered_t - mean) / std
            rec = rec_net(x_in)
            rec_unit = to_unit(rec)
            loss_rec = F.mse_loss(rec_unit, clean) + (1 - ssim_map(rec_unit, clean)).mean()
            loss_seg = focal_loss(disc_net(x_in, rec), masks_t)
            return loss_rec + loss_seg

        params = list(rec_net.parameters()) + list(disc_net.parameters())
        optimizer = torch.optim.Adam(params, lr=self.p.learning_rate)
        epochs = self.p.epochs
        # the paper's schedule: learning rate x 0.2 at 80 % and 90 % of training
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, [max(1, int(0.8 * epochs)), max(1, int(0.9 * epochs))], gamma=0.2)
        history = train_method(self, step_loss, [rec_net, disc_net], optimizer, cache, cancel, progress,
                               scheduler=scheduler)
        self.metadata["loss_history"] = history.train_loss
        self._set_module(module)

    def _reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.reconstructive(x)
