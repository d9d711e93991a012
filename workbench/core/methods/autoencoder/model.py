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
from torch import nn

from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods.autoencoder.network import DOWNSAMPLINGS, ConvAutoencoder
from workbench.core.methods.ops import gaussian_blur
from workbench.core.methods.reconstruction import (ReconstructionModel, load_module_state, module_state,
                                                    random_flips, seeded, ssim_map, to_unit, topk_mean,
                                                    with_defaults)
from workbench.core.methods.schema import Param
from workbench.core.methods.trainer import TRAINING_PARAMS, ImageCache, train_loop


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
    ) + TRAINING_PARAMS

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        if self.image_size % 2 ** DOWNSAMPLINGS:
            raise ValueError(f"{self.title} needs an image_size divisible by {2 ** DOWNSAMPLINGS}; "
                             f"got {self.image_size}.")
        self.net = self._build()

    def _build(self) -> ConvAutoencoder:
        return seeded(int(self.params["seed"]), lambda: ConvAutoencoder(
            int(self.params["width"]), int(self.params["latent_channels"]))).to(self.device).eval()

    @classmethod
    def schema(cls) -> tuple[Param, ...]:
        return with_defaults(super().schema(), image_size=128, epochs=60)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        self.net = self._build()  # refitting starts from the same seeded initialisation
        cache = ImageCache(images, self.image_size, cancel, progress)
        generator = torch.Generator().manual_seed(int(self.params["seed"]))
        augment = bool(self.params["augment"])

        def step_loss(x: torch.Tensor) -> torch.Tensor:
            if augment and self.net.training:
                x = random_flips(x, generator)
            rec = self.net(x)
            a, b = to_unit(x), to_unit(rec)
            return F.mse_loss(b, a) + (1 - ssim_map(a, b)).mean()

        optimizer = torch.optim.Adam(self.net.parameters(), lr=float(self.params["learning_rate"]),
                                     weight_decay=1e-5)
        history = train_loop(
            step_loss, [self.net], optimizer, cache, mean=self.normalization[0], std=self.normalization[1],
            device=self.device, epochs=int(self.params["epochs"]), batch_size=int(self.params["batch_size"]),
            seed=int(self.params["seed"]), cancel=cancel, progress=progress,
            early_stopping=int(self.params["early_stopping"]))
        self.metadata["loss_history"] = history.train_loss
        self.net.eval()

    def _reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _predict_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.export_module()(x)

    def export_module(self) -> torch.nn.Module:
        return AutoencoderExport(self.net, float(self.params["l2_weight"]), float(self.params["smoothing_sigma"]),
                                 float(self.params["topk_fraction"]))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return module_state("net", self.net)

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        load_module_state("net", self.net, {k: v.to(self.device) for k, v in tensors.items()})
        self.net.eval()
        self.fitted = True


class AutoencoderExport(nn.Module):
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

