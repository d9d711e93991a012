"""CutPaste (Li et al., "CutPaste: Self-Supervised Learning for Anomaly Detection and
Localization", CVPR 2021), the 3-way variant.

A pretrained network learns to tell good images from two synthetic kinds of local damage
made from the good images themselves: a pasted rectangle (CutPaste) and a pasted thin
rotated strip (CutPaste-Scar), see :mod:`.augment`. The classifier is then thrown away: a
Gaussian density (mean and Ledoit-Wolf shrunk covariance, sklearn) is fitted to the network's
representation of the good training images, and the image score is the Mahalanobis distance
to it. The self-supervised task makes the representation sensitive to local irregularities
that ImageNet features average away.

What trains, and why: the embedded EfficientNet-Lite0 keeps its ImageNet weights in the
early stages and only its last stage (``finetune_stages`` = 1, the stride-32 blocks, 2.3 M
of its 3 M weights but a small share of the compute) is fine-tuned, together with the
paper's MLP projection head and a linear 3-way classifier. Fine-tuning the whole network
on a few dozen images (the paper fine-tunes a ResNet-18 on hundreds for 256 epochs) over-fits
the synthetic task and is far too slow on a CPU; freezing everything but a head would leave
the density on unchanged ImageNet features. The frozen early stages keep their BatchNorm
statistics. The density is fitted on the globally pooled last stage (the paper's choice: the
representation before the projection head).

Localisation: the paper trains a second model on 64 x 64 patches and slides it over the
image with stride 4 (thousands of forward passes per image). Here the "patches" are the
positions of the network's feature grid (each position's receptive field is a patch;
``local_kernel`` averages a k x k neighbourhood), scored with a Gaussian fitted to all
positions of the good images and upsampled: one forward pass, CPU-fast and exportable.
By default the grid is that of stages 2 and 3 (strides 8 and 16), which the default
fine-tuning leaves frozen: on the sample data the fine-tuned stride-32 grid localises
clearly worse (pixel AUROC 0.90 / 0.95 and AUPRO 0.74 / 0.78 on fabric / washer, against
0.98 / 0.99 and 0.92 / 0.96), its cells being 32 px wide. So the self-supervised training
improves the image score (image AUROC 0.981 / 0.997 with the same density on the untrained
backbone, 0.994 / 1.000 after the default 10 epochs), and the map is the patch-level Gaussian on pretrained features
(``map_layers`` = "4" or "3,4" uses the fine-tuned stage; ``finetune_stages`` = 2 also
fine-tunes stage 3).

Other deviations: Adam instead of SGD with cosine decay (the randomly initialised head and
classifier learn at 10x ``learning_rate``, the pretrained stage at ``learning_rate``); input
256 px as in the paper but 10 epochs (the data are small); the colour jitter leaves hue alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.components.ops import parse_layers
from workbench.core.methods.components.training import TRAINING_PARAMS, ImageCache, train_method
from workbench.core.methods.cutpaste.augment import three_way_batch
from workbench.core.methods.cutpaste.torch_model import (STAGES, CutPasteModel, CutPasteNet, image_embedding,
                                                         ledoit_wolf, patch_embedding)
from workbench.core.methods.images import batches
from workbench.core.methods.schema import Param, with_defaults


class CutPaste(AnomalyModel):
    name = "cutpaste"
    title = "CutPaste"
    family = "Self-supervised (synthetic defects)"
    description = ("Fine-tunes the backbone to recognise cut-and-pasted patches and scars made from "
                   "good images, then scores images by their distance to the good images' feature "
                   "distribution. Needs a short training run; one forward pass at inference.")
    method_params = (
        Param("finetune_stages", "int", 1, "Last backbone stages fine-tuned on the CutPaste task: 1 "
              "(the stride-32 stage) is fast and safe on small data; 2 adapts more but over-fits "
              "the synthetic defects more easily and trains about twice as slowly.", 1, 2),
        Param("map_layers", "choice", "2,3", "Stages whose feature grid gives the anomaly map. Finer "
              "stages localise better; stage 4 is the fine-tuned one but only 1/32 of the input "
              "resolution.", choices=("2,3", "3", "3,4", "4")),
        Param("local_kernel", "choice", "3", "Map features are averaged over this k x k neighbourhood of "
              "the grid (the 'patch'): larger is smoother, smaller is sharper.", choices=("1", "3", "5")),
        Param("jitter", "float", 0.1, "Strength of the colour jitter of pasted patches. Stronger "
              "jitter makes the task easier to solve by colour alone.", 0.0, 0.5),
        Param("smoothing_sigma", "float", 4.0, "Gaussian smoothing of the anomaly map in pixels.", 0.0, 32.0),
        *with_defaults(TRAINING_PARAMS, epochs=10, learning_rate=1e-4),
    )

    tiny_params = {"image_size": 64, "epochs": 2, "batch_size": 4}

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        self.backbone_layers = STAGES
        self.map_stages = parse_layers(self.p.map_layers)

    def _new_net(self) -> CutPasteNet:
        return CutPasteNet(self.extractor.model, self.p.finetune_stages).to(self.device)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        cache = ImageCache(images, self.image_size, cancel, progress)
        net = self._new_net()
        mean, std = self.normalization
        m = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        s = torch.tensor(std, device=self.device).view(1, 3, 1, 1)
        gen = torch.Generator().manual_seed(self.p.seed)
        jitter = self.p.jitter

        def step_loss(x: torch.Tensor) -> torch.Tensor:
            batch, labels = three_way_batch((x * s + m).clamp(0, 1), gen, jitter)
            return F.cross_entropy(net.logits((batch - m) / s), labels)

        lr = self.p.learning_rate
        trainable = [p for p in net.features.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam([{"params": trainable, "lr": lr},
                                      {"params": [*net.head.parameters(), *net.classifier.parameters()],
                                       "lr": 10 * lr}])
        history = train_method(self, step_loss, [net], optimizer, cache, cancel, progress)
        self.metadata["training_history"] = history.as_metadata()
        net.eval()
        self._set_module(self._wrap(net, self._fit_gaussians(net, cache, progress, cancel)))

    @torch.no_grad()
    def _fit_gaussians(self, net: CutPasteNet, cache: ImageCache, progress: ProgressCallback | None,
                       cancel: CancelToken) -> dict[str, torch.Tensor]:
        mean, std = self.normalization
        report = make_reporter(progress, "fit Gaussian", len(cache))
        pooled, patches = [], []
        for start, chunk in batches(np.arange(len(cache)), self.p.batch_size):
            cancel.raise_if_cancelled()
            feats = net(cache.batch(np.asarray(chunk), mean, std, self.device))
            pooled.append(image_embedding(feats).cpu())
            emb = patch_embedding(feats, self.map_stages, int(self.p.local_kernel))
            patches.append(emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]).cpu())
            report(start + len(chunk))
        image_mean, image_precision = ledoit_wolf(torch.cat(pooled))
        patch_mean, patch_precision = ledoit_wolf(torch.cat(patches))
        return {"image_mean": image_mean, "image_precision": image_precision,
                "patch_mean": patch_mean, "patch_precision": patch_precision}

    def _wrap(self, net: CutPasteNet, gaussians: dict[str, torch.Tensor]) -> CutPasteModel:
        return CutPasteModel(net, gaussians, self.map_stages, int(self.p.local_kernel), self.image_size,
                             self.p.smoothing_sigma)

    def _new_module(self, tensors: dict[str, torch.Tensor]) -> CutPasteModel:
        prefix = "gaussian."
        return self._wrap(self._new_net(), {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
