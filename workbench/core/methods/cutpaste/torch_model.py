"""CutPaste torch modules: the partly fine-tuned classifier and the inference module (network +
Gaussian densities -> scores and maps)."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from workbench.core.methods.components.inference import InferenceModule
from workbench.core.methods.components.ops import fuse_features, gaussian_blur, upsample_maps

STAGES = (2, 3, 4)  # backbone stages the network returns (strides 8, 16, 32)


class CutPasteNet(nn.Module):
    """Pretrained backbone whose last ``finetune_stages`` stages train, plus the paper's MLP
    projection head and a linear 3-way classifier (normal / CutPaste / scar).

    The frozen part keeps its BatchNorm statistics (the backbone is always in eval mode): with
    a few dozen images, updating them from augmented batches only adds noise.
    """

    def __init__(self, pretrained: nn.Module, finetune_stages: int, hidden: int = 256, projection: int = 128,
                 n_classes: int = 3) -> None:
        super().__init__()
        self.features = copy.deepcopy(pretrained)
        names = list(self.features.feature_info.module_name())  # modules ending stages 2, 3, 4
        boundary = names[len(names) - 1 - finetune_stages]
        self.trainable_prefixes = _modules_after(self.features, boundary)
        for name, p in self.features.named_parameters():
            p.requires_grad_(any(name.startswith(prefix + ".") for prefix in self.trainable_prefixes))
        channels = int(self.features.feature_info.channels()[-1])
        self.head = nn.Sequential(nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, projection))
        self.classifier = nn.Linear(projection, n_classes)

    def train(self, mode: bool = True) -> "CutPasteNet":
        super().train(mode)
        self.features.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.features(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.forward(x)[-1].mean(dim=(2, 3))))

    def is_learned(self, name: str) -> bool:
        """Whether state entry ``name`` can differ from the pretrained backbone (fine-tuned stages
        incl. their BatchNorm buffers, head and classifier)."""
        if not name.startswith("features."):
            return True
        module = name[len("features."):].rsplit(".", 1)[0]
        return any(module == p or module.startswith(p + ".") for p in self.trainable_prefixes)

    def learned_state(self) -> dict[str, torch.Tensor]:
        """Every tensor that differs from the pretrained backbone."""
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if self.is_learned(k)}


def _modules_after(model: nn.Module, boundary: str) -> list[str]:
    """Names of the parameter-holding top-level blocks that come after ``boundary`` (forward order).

    For EfficientNet (``blocks.4`` ends stage 3) the last stage is ``blocks.5`` and ``blocks.6``.
    """
    order: list[str] = []
    for name, _ in model.named_parameters():
        parts = name.split(".")
        prefix = ".".join(parts[:2]) if parts[0] == "blocks" else parts[0]
        if prefix not in order:
            order.append(prefix)
    if boundary not in order:
        raise ValueError(f"Cannot find the stage boundary '{boundary}' in the backbone.")
    return order[order.index(boundary) + 1:]


def ledoit_wolf(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, precision) of a Gaussian fitted with Ledoit-Wolf shrinkage (sklearn) to rows of x."""
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(x.detach().double().cpu().numpy())
    return (torch.from_numpy(np.asarray(lw.location_)).float().contiguous(),
            torch.from_numpy(np.asarray(lw.get_precision())).float().contiguous())


def mahalanobis(x: torch.Tensor, mean: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """sqrt((x - mean)^T P (x - mean)) over the last dimension."""
    delta = x - mean
    return ((delta @ precision) * delta).sum(-1).clamp_min(0.0).sqrt()


def image_embedding(feats: list[torch.Tensor]) -> torch.Tensor:
    """The representation the density is fitted on: the last stage, globally pooled (the
    paper's choice: the backbone output before the projection head)."""
    return feats[-1].mean(dim=(2, 3))


def patch_embedding(feats: list[torch.Tensor], map_stages: tuple[int, ...], local_kernel: int) -> torch.Tensor:
    """Per-position embeddings [B, D, h, w] from the chosen stages (indices into STAGES)."""
    return fuse_features([feats[STAGES.index(s)] for s in map_stages], local_kernel=local_kernel)


class Gaussians(nn.Module):
    """The image-level and patch-level Gaussians (mean and precision) as buffers."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for key in ("image_mean", "image_precision", "patch_mean", "patch_precision"):
            self.register_buffer(key, tensors[key].float().contiguous())


class CutPasteModel(InferenceModule):
    """Network + the two Gaussians -> (scores[B], maps[B, S, S]); ONNX-exportable. The saved state
    is the network's learned part and the Gaussians; the frozen backbone stages are rebuilt."""

    def __init__(self, net: CutPasteNet, tensors: dict[str, torch.Tensor], map_stages: tuple[int, ...],
                 local_kernel: int, image_size: int, sigma: float) -> None:
        super().__init__()
        self.net = net
        self.gaussian = Gaussians(tensors)
        self.map_stages, self.local_kernel = map_stages, local_kernel
        self.image_size, self.sigma = image_size, sigma

    def _is_frozen(self, key: str) -> bool:
        return key.startswith("net.") and not self.net.is_learned(key[len("net."):])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.net(x)
        g = self.gaussian
        scores = mahalanobis(image_embedding(feats), g.image_mean, g.image_precision)
        emb = patch_embedding(feats, self.map_stages, self.local_kernel)
        dist = mahalanobis(emb.permute(0, 2, 3, 1), g.patch_mean, g.patch_precision)
        maps = gaussian_blur(upsample_maps(dist, self.image_size), self.sigma)
        return scores, maps
