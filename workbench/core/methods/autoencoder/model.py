"""SSIM autoencoder (Bergmann et al., "Improving Unsupervised Defect Segmentation by Applying
Structural Similarity to Autoencoders", VISAPP 2019).

A convolutional autoencoder is trained on good images only to reproduce them through a
narrow code. Defects were never seen, so they come back "repaired": the difference between
input and reconstruction marks them. Bergmann et al. showed that measuring that difference
with the local structural similarity (SSIM: luminance, contrast and structure in an 11 x 11
window) instead of per-pixel L2 finds structural defects that L2 misses; here the anomaly map
is ``(1 - SSIM) + l2_weight * L2`` so that pure colour changes (stains) count too, smoothed
with a Gaussian. The image score is the mean of the top ``topk_fraction`` of the map.

Deviations, forced by training from scratch on a few dozen images on a CPU:
- 128 px input by default (the paper also uses 128 px, but on patches of larger images);
  whole images with random flips as augmentation instead of random patches.
- The code stays spatial (``latent_channels`` per 16 x 16 input cell) instead of one dense
  100-d vector, so the network works at any image_size; its narrowness is the bottleneck.
- Batch normalisation in the conv blocks and a loss of SSIM + L2 (the paper: SSIM only),
  which trains faster and keeps colours right.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods.autoencoder.torch_model import DOWNSAMPLINGS, AutoencoderModel, ConvAutoencoder
from workbench.core.methods.components.reconstruction import ReconstructionModel, random_flips, seeded, ssim_map, to_unit
from workbench.core.methods.components.training import TRAINING_PARAMS, ImageCache, train_method
from workbench.core.methods.schema import Param, with_defaults


class SsimAutoencoder(ReconstructionModel):
    name = "autoencoder"
    title = "SSIM Autoencoder"
    family = "Reconstruction"
    description = ("A convolutional autoencoder learns to redraw good images; defects are not redrawn, so "
                   "the structural (SSIM) and colour (L2) difference marks them. No pretrained network; "
                   "trains from scratch. Simple and explainable, less accurate than feature methods.")
    method_params = (
        Param("width", "int", 16, "Channels of the first encoder stage (doubling each stage). Wider "
              "learns more detail but trains slower.", 8, 128),
        Param("latent_channels", "int", 16, "Channels of the code per 16 x 16 pixel cell: the bottleneck. "
              "Wider redraws good images more sharply but also starts copying defects.", 1, 256),
        Param("l2_weight", "float", 10.0, "Weight of the colour (squared difference) residual added to "
              "1 - SSIM in the anomaly map. Raise it for colour defects, lower it for structural ones.",
              0.0, 1000.0),
        Param("augment", "bool", True, "Random horizontal and vertical flips during training. Good for "
              "textures and symmetric parts; turn off when orientation matters."),
        Param("smoothing_sigma", "float", 2.0, "Gaussian smoothing of the anomaly map in pixels.", 0.0, 32.0),
        Param("topk_fraction", "float", 0.01, "Image score = mean of this top fraction of map pixels "
              "(0 = the maximum). Larger is steadier but misses tiny defects.", 0.0, 1.0),
        *with_defaults(TRAINING_PARAMS, epochs=60),
    )
    common_defaults = {"image_size": 128}
    tiny_params = {"image_size": 64, "epochs": 2, "width": 8}

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        if self.image_size % 2 ** DOWNSAMPLINGS:
            raise ValueError(f"{self.title} needs an image_size divisible by {2 ** DOWNSAMPLINGS}; "
                             f"got {self.image_size}.")

    def _new_module(self, tensors: dict[str, torch.Tensor] | None = None) -> AutoencoderModel:
        """The network with its seeded initialisation (so refitting starts from the same weights)."""
        net = seeded(self.p.seed, lambda: ConvAutoencoder(self.p.width, self.p.latent_channels))
        return AutoencoderModel(net.to(self.device).eval(), self.p.l2_weight, self.p.smoothing_sigma,
                                self.p.topk_fraction)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        module = self._new_module()
        net = module.net
        cache = ImageCache(images, self.image_size, cancel, progress)
        generator = torch.Generator().manual_seed(self.p.seed)
        augment = self.p.augment

        def step_loss(x: torch.Tensor) -> torch.Tensor:
            if augment and net.training:
                x = random_flips(x, generator)
            rec = net(x)
            a, b = to_unit(x), to_unit(rec)
            return F.mse_loss(b, a) + (1 - ssim_map(a, b)).mean()

        optimizer = torch.optim.Adam(net.parameters(), lr=self.p.learning_rate, weight_decay=1e-5)
        history = train_method(self, step_loss, [net], optimizer, cache, cancel, progress)
        self.metadata["loss_history"] = history.train_loss
        self._set_module(module)

    def _reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.net(x)
