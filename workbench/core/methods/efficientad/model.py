"""EfficientAD (Batzner, Heckler & König, "EfficientAD: Accurate Visual Anomaly Detection at
Millisecond-Level Latencies", WACV 2024), the small variant EfficientAD-S.

A tiny patch description network (PDN) teacher describes every 33 x 33 patch; a student PDN
with twice the output channels learns, on good images only, (a) to predict the teacher's
normalised features, with the hard-feature loss (only the squared errors above their 0.999
quantile count, so the student does not waste capacity on what it already predicts), and
(b) to predict the output of a small autoencoder, which itself learns to reproduce the
teacher's features through a 64-number bottleneck. The student-teacher difference finds
local (structural) anomalies; the student-autoencoder difference finds logical ones (the
autoencoder cannot represent a wrong arrangement). Each map is normalised with its 0.9 and
0.995 quantiles on held-back good images (mapped to 0 and 0.1), the two are averaged, and
the image score is the maximum. Inference is one pass through three small networks.

Deviations, forced by offline CPU use:

* Teacher: the paper distils a WideResNet-101 into the teacher PDN on ImageNet. Neither is
  available offline, so the teacher is distilled, at the start of every fit, from the
  embedded EfficientNet-Lite0 (stages 2 and 3 by default, computed at twice the input size
  so their grid matches the PDN's, 3 x 3 averaged as in PatchCore) on the *training images*
  under strong augmentation (random resized crops, flips, quarter turns, colour jitter,
  grayscale). This distillation counts toward fit time. The teacher has as many output
  channels as the chosen backbone stages (152 by default) instead of 384.
* How the teacher is distilled: the paper takes 60,000 gradient steps; a CPU affords a few
  hundred, and those left the teacher *worse* than random (on fabric its outputs correlated
  with the backbone's at a median 0.02, and the student-teacher map reached 0.78-0.86 image
  AUROC). Instead the PDN keeps its seeded random trunk and its last convolution, which is
  linear in the trunk's 4 x 4 feature windows, is solved by ridge least squares on the
  augmented images (:func:`.torch_model.fit_readout`, seconds). That explains 33 % (fabric)
  and 70 % (washer) of the backbone targets' variance; ``distill_epochs`` > 0 adds gradient
  fine-tuning on top. The fitted R^2 is kept in the model's training history.
* The frozen teacher's outputs for each training image and eight colour-jittered copies are
  computed once before the student trains (:class:`TeacherTargetSet`), so a training step
  runs only the student and the autoencoder: about 15 % faster than running the teacher
  twice per step.
* The combined map is smoothed with a Gaussian (``smoothing_sigma``, 8 px = two output cells
  by default). Without it, the student-autoencoder map of the briefly trained autoencoder has
  a peak of a cell or two on every good washer image (the hole in the middle, which a 33 px
  patch cannot tell from the belt around the part), and that peak, not the defects, sets the
  image scores: washer image AUROC 0.71 and 0.87 unsmoothed, 0.93 and 0.99 smoothed, on the
  same two models (seeds 0 and 1).
* The student's ImageNet penalty term (keeping its output small on unrelated images) is
  dropped: there are no ImageNet images offline.
* Widths are halved (``width`` 64 instead of 128), the default input is 128 px instead of
  256 and training runs for a few hundred batch steps at a higher learning rate instead of
  70,000 single-image steps, so one category trains in a few minutes on two CPU cores.
* The quantiles are taken on a seeded 10 % of the training images held back from training
  (or on the training images themselves when fewer than 10 are given).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.jobs import CancelToken, ProgressCallback, ProgressEvent, make_reporter
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.efficientad.augment import Augmenter
from workbench.core.methods.efficientad.torch_model import (
    AutoEncoder, EfficientAdModel, PatchDescriptionNetwork, fit_readout, hard_feature_loss, pdn_output_size)
from workbench.core.methods.components.ops import parse_layers
from workbench.core.methods.schema import Param, with_defaults
from workbench.core.methods.components.training import TRAINING_PARAMS, ImageCache, normalised_batch, train_loop

QUANTILE_A, QUANTILE_B = 0.9, 0.995


class EfficientAd(AnomalyModel):
    name = "efficientad"
    title = "EfficientAD-S"
    family = "Knowledge distillation (teacher-student)"
    description = ("A tiny student network imitates a tiny teacher and an autoencoder on good images; "
                   "their disagreements flag local defects and wrong arrangements. Inference is one "
                   "pass of three small networks without the backbone (made for GPUs; about 35 ms "
                   "per image on 2 CPU cores), exportable to ONNX.")
    params_before_added = {"smoothing_sigma": 0.0}  # packages saved before smoothing existed
    method_params = (
        Param("teacher_layers", "choice", "2,3", "Backbone stages the teacher network is distilled "
              "from. '2,3' describes patches by local structure; '1,2' keeps finer texture detail.",
              choices=("1,2", "2,3", "1,2,3")),
        Param("width", "int", 64, "Channels of the patch networks' first layer (the paper's 128). "
              "Wider networks describe patches better but train and run slower.", 8, 256),
        Param("distill_epochs", "int", 0, "Gradient passes over the augmented good images (four "
              "copies of each) after the teacher's last layer is fitted by least squares. 0 keeps the "
              "least-squares teacher (measured best on the sample data); more refines the whole "
              "teacher at a tenth of the learning rate but lengthens the fit.", 0, 1000),
        Param("hard_quantile", "float", 0.999, "Only student-teacher errors above this quantile are "
              "trained on (hard-feature loss). Higher focuses on the hardest patches; 0 trains on all.",
              0.0, 0.99999),
        Param("smoothing_sigma", "float", 8.0, "Gaussian smoothing of the anomaly map in pixels (4 = "
              "one cell of the networks' output grid). Removes the few-cell peaks that would otherwise "
              "set the image score; 0 keeps the paper's unsmoothed map.", 0.0, 32.0),
        *with_defaults(TRAINING_PARAMS, epochs=60, learning_rate=1e-3),
    )

    common_defaults = {"image_size": 128}
    tiny_params = {"image_size": 64, "width": 8, "distill_epochs": 3, "epochs": 2, "batch_size": 4}

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        if self.image_size % 4 or self.image_size < 64:
            raise ValueError("EfficientAD needs an image size that is a multiple of 4 and at least 64.")
        self.backbone_layers = parse_layers(self.p.teacher_layers)

    @property
    def teacher_channels(self) -> int:
        return sum(self.extractor.channels)

    def _new_networks(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        c, w = self.teacher_channels, self.p.width
        return (PatchDescriptionNetwork(c, w).to(self.device), PatchDescriptionNetwork(2 * c, w).to(self.device),
                AutoEncoder(c, self.image_size, max(8, w // 2)).to(self.device))

    # --------------------------------------------------------------- distillation target
    @torch.no_grad()
    def _backbone_target(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features on the PDN's output grid: the backbone sees the image at twice
        the size, so its stride-8 grid is the PDN's stride-4 grid; stages are 3 x 3 averaged,
        brought to that grid and cropped to the cells whose 33 x 33 patch lies in the image."""
        s = self.image_size
        feats = self.extractor(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
        grid, n = s // 4, pdn_output_size(s)
        out = []
        for f in feats:
            f = F.avg_pool2d(f, 3, 1, 1, count_include_pad=False)
            if f.shape[-1] > grid:
                f = F.adaptive_avg_pool2d(f, grid)
            elif f.shape[-1] < grid:
                f = F.interpolate(f, size=(grid, grid), mode="bilinear", align_corners=False)
            out.append(f)
        return torch.cat(out, 1)[:, :, 4:4 + n, 4:4 + n]

    @torch.no_grad()
    def _channel_stats(self, fn, cache: ImageCache, cancel: CancelToken) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = self.normalization
        total, total_sq, count = 0.0, 0.0, 0
        for x in _batches(cache, self.p.batch_size, mean, std, self.device, cancel):
            f = fn(x).double()
            total = total + f.sum((0, 2, 3))
            total_sq = total_sq + f.pow(2).sum((0, 2, 3))
            count += f.shape[0] * f.shape[2] * f.shape[3]
        m = total / count
        sd = (total_sq / count - m.pow(2)).clamp_min(1e-12).sqrt()
        return m.float(), sd.float().clamp_min(1e-6)

    # --------------------------------------------------------------- fit
    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        seed, bs = self.p.seed, self.p.batch_size
        n = len(images)
        order = np.random.default_rng(seed).permutation(n)
        n_hold = int(round(0.1 * n)) if n >= 10 else 0
        train_idx = sorted(order[n_hold:].tolist())
        hold_idx = sorted(order[:n_hold].tolist()) if n_hold else train_idx
        cache = ImageCache([images[i] for i in train_idx], self.image_size, cancel, progress)
        hold = ImageCache([images[i] for i in hold_idx], self.image_size, cancel) if n_hold else cache
        mean, std = self.normalization
        aug = Augmenter(mean, std, seed, self.device)
        teacher, student, autoencoder = self._new_networks()
        lr = self.p.learning_rate
        common = dict(mean=mean, std=std, device=self.device, batch_size=bs, seed=seed, cancel=cancel)

        # 1. distil the teacher PDN from the frozen backbone on augmented good images
        distill_set = DistillationSet(cache, aug, self._backbone_target, self.teacher_channels,
                                      pdn_output_size(self.image_size), bs, cancel,
                                      _renamed(progress, "augment for distillation"))

        def distill_loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            x, target = batch
            return (teacher(x) - target.float()).pow(2).mean()

        # the last layer in closed form (least squares), then optional gradient fine-tuning at a
        # tenth of the learning rate, so the steps refine the fit instead of undoing it
        teacher_r2 = fit_readout(teacher, _batches(distill_set, bs, mean, std, self.device, cancel))
        opt_t = torch.optim.Adam(teacher.parameters(), lr=0.1 * lr, weight_decay=1e-5)
        distill_history = train_loop(distill_loss, [teacher], opt_t, distill_set,  # type: ignore[arg-type]
                                     epochs=self.p.distill_epochs,
                                     progress=_renamed(progress, "distil teacher"), **common)
        del distill_set
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)

        # 2. teacher channel normalisation on the (unaugmented) training images
        t_mean, t_std = self._channel_stats(teacher, cache, cancel)
        tm, ts = t_mean.view(1, -1, 1, 1), t_std.view(1, -1, 1, 1)
        c, q = self.teacher_channels, self.p.hard_quantile

        # 3. student and autoencoder, on the teacher's outputs computed once (it is frozen)
        targets = TeacherTargetSet(cache, aug, lambda x: (teacher(x) - tm) / ts, bs, seed, cancel,
                                   _renamed(progress, "teacher outputs"))

        def student_loss(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            x, t, x_ae, t_ae = (v.float() for v in batch)
            s = student(x)[:, :c]
            loss_hard = hard_feature_loss(t, s, q) if q > 0 else (t - s).pow(2).mean()
            a = autoencoder(x_ae)
            s_ae = student(x_ae)[:, c:]
            return loss_hard + (t_ae - a).pow(2).mean() + (a - s_ae).pow(2).mean()

        epochs = self.p.epochs
        opt = torch.optim.Adam(list(student.parameters()) + list(autoencoder.parameters()), lr=lr, weight_decay=1e-5)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[max(1, int(0.95 * epochs))], gamma=0.1)
        history = train_loop(student_loss, [student, autoencoder], opt, targets, epochs=epochs,  # type: ignore[arg-type]
                             progress=progress,
                             scheduler=sched, early_stopping=self.p.early_stopping, **common)
        student.eval()
        autoencoder.eval()

        # 4. map normalisation quantiles on held-back good images
        module = EfficientAdModel(teacher, student, autoencoder, t_mean, t_std,
                                  torch.tensor([0.0, 1.0, 0.0, 1.0]), self.image_size, self.p.smoothing_sigma)
        module = module.to(self.device)
        st, ae = [], []
        with torch.no_grad():
            for x in _batches(hold, bs, mean, std, self.device, cancel):
                m_st, m_ae = module.raw_maps(x)
                st.append(m_st.flatten())
                ae.append(m_ae.flatten())
        module.quantiles.copy_(torch.cat([_quantiles(torch.cat(st)), _quantiles(torch.cat(ae))]))
        self._set_module(module)
        self.metadata["training_history"] = {
            "distill_loss": distill_history.train_loss, "teacher_r2": teacher_r2,
            "train_loss": history.train_loss,
            "val_loss": history.val_loss, "best_epoch": history.best_epoch}

    # --------------------------------------------------------------- inference and state
    def _new_module(self, tensors: dict[str, torch.Tensor]) -> EfficientAdModel:
        teacher, student, autoencoder = self._new_networks()
        c = self.teacher_channels
        return EfficientAdModel(teacher, student, autoencoder, torch.zeros(c), torch.ones(c), torch.zeros(4),
                                self.image_size, self.p.smoothing_sigma)


class DistillationSet:
    """Augmented copies of the good images with their standardised backbone targets.

    The backbone pass at twice the input size costs more than a teacher training step, so it
    is done once here and every distillation epoch reuses it. It quacks like
    :class:`ImageCache` for :func:`train_loop`, but a batch is ``(images, targets)``. Size: four
    augmented copies per image (at least 64 samples), capped to about 512 MB.
    """

    def __init__(self, cache: ImageCache, aug: Augmenter, target_fn, channels: int, grid: int,
                 batch_size: int, cancel: CancelToken, progress: ProgressCallback | None,
                 copies: int = 4, min_samples: int = 64, max_bytes: int = 512 * 2**20) -> None:
        size = cache.data.shape[1]
        per_sample = 3 * size * size + 2 * channels * grid * grid  # uint8 image + float16 target
        n = min(max(copies * len(cache), min_samples), max(8, max_bytes // per_sample))
        self.images = np.empty((n, size, size, 3), np.uint8)
        self.targets = torch.empty((n, channels, grid, grid), dtype=torch.float16)
        mean, std = aug.mean, aug.std
        report = make_reporter(progress, "augment", n)
        source = np.arange(n) % len(cache)
        for start in range(0, n, batch_size):
            cancel.raise_if_cancelled()
            idx = source[start:start + batch_size]
            x = aug.distill(cache.batch(idx, mean.flatten().tolist(), std.flatten().tolist(), mean.device))
            self.images[start:start + len(idx)], x = _quantised(x, mean, std)
            self.targets[start:start + len(idx)] = target_fn(x).cpu().half()
            report(start + len(idx))
        # standardise every target channel, so predicting the mean scores a loss of 1
        t = self.targets.float()
        self.targets = ((t - t.mean((0, 2, 3), keepdim=True)) / t.std((0, 2, 3), keepdim=True).clamp_min(1e-6)).half()

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: np.ndarray, mean, std, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return normalised_batch(self.images[index], mean, std, device), self.targets[index].to(device)


class TeacherTargetSet:
    """Each training image with the frozen teacher's normalised output, plus ``copies``
    colour-jittered versions (the paper's autoencoder augmentation) with theirs.

    The teacher is frozen, so its outputs are computed once here instead of twice per
    training step. A batch is ``(image, target, jittered image, its target)`` with one of the
    image's jittered copies drawn at random (seeded); ``len`` is the number of images, so an
    epoch is still one pass over them. The jittered copies are capped to about ``max_bytes``
    in all, but there is always at least one.
    """

    def __init__(self, cache: ImageCache, aug: Augmenter, teacher_fn, batch_size: int, seed: int,
                 cancel: CancelToken, progress: ProgressCallback | None, copies: int = 8,
                 max_bytes: int = 512 * 2**20) -> None:
        n, size = len(cache), cache.data.shape[1]
        mean, std = aug.mean, aug.std
        m_list, s_list = mean.flatten().tolist(), std.flatten().tolist()
        with torch.no_grad():
            probe = teacher_fn(cache.batch(np.arange(1), m_list, s_list, mean.device))
        per_copy = n * (3 * size * size + 2 * probe[0].numel())
        self.copies = 1 + max(1, min(copies, max_bytes // max(per_copy, 1) - 1))
        self.images = np.empty((n, self.copies, size, size, 3), np.uint8)
        self.targets = torch.empty((n, self.copies, *probe.shape[1:]), dtype=torch.float16)
        self.rng = np.random.default_rng(seed)
        report = make_reporter(progress, "teacher outputs", n * self.copies)
        done = 0
        for k in range(self.copies):
            for start in range(0, n, batch_size):
                cancel.raise_if_cancelled()
                idx = np.arange(start, min(start + batch_size, n))
                x = cache.batch(idx, m_list, s_list, mean.device)
                if k:  # copy 0 is the image itself
                    x = aug.color(x)
                self.images[idx, k], x = _quantised(x, mean, std)
                with torch.no_grad():
                    self.targets[idx, k] = teacher_fn(x).cpu().half()
                done += len(idx)
                report(done)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: np.ndarray, mean, std, device: torch.device) -> tuple[torch.Tensor, ...]:
        out = []
        for copy in (np.zeros(len(index), int), self.rng.integers(1, self.copies, size=len(index))):
            out += [normalised_batch(self.images[index, copy], mean, std, device), self.targets[index, copy].to(device)]
        return tuple(out)


def _quantised(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """A normalised batch rounded to 8-bit RGB, as stored (uint8 NHWC) and as ``batch()`` will
    return it, so targets are computed on exactly the pixels the networks later train on."""
    rgb = ((x * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
    return rgb.permute(0, 2, 3, 1).cpu().numpy(), (rgb.float() / 255.0 - mean) / std


def _batches(data, batch_size: int, mean, std, device: torch.device, cancel: CancelToken):
    """Every item of an :class:`ImageCache` or :class:`DistillationSet` once, in order, in batches."""
    for start in range(0, len(data), batch_size):
        cancel.raise_if_cancelled()
        yield data.batch(np.arange(start, min(start + batch_size, len(data))), mean, std, device)


def _quantiles(values: torch.Tensor) -> torch.Tensor:
    """(q_a, q_b) of a map's values; q_b is kept above q_a so the normalisation never divides by 0."""
    v = values.double().cpu()
    if v.numel() > 4_000_000:
        v = v[torch.randperm(v.numel(), generator=torch.Generator().manual_seed(0))[:4_000_000]]
    qa, qb = torch.quantile(v, torch.tensor([QUANTILE_A, QUANTILE_B], dtype=v.dtype)).tolist()
    return torch.tensor([qa, max(qb, qa + 1e-6)], dtype=torch.float32)


def _renamed(progress: ProgressCallback | None, stage: str) -> ProgressCallback | None:
    """Report a training phase under its own stage name (the teacher distillation)."""
    if progress is None:
        return None

    def forward(event: ProgressEvent) -> None:
        progress(ProgressEvent(stage, event.current, event.total, event.message, event.metrics))

    return forward
