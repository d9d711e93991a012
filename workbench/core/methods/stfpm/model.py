"""STFPM (Wang et al., "Student-Teacher Feature Pyramid Matching for Anomaly Detection", BMVC 2021).

A frozen pretrained teacher and a student of the same architecture, trained from random
weights on good images only, both produce a feature pyramid. The student learns to
reproduce the teacher's L2-normalised features at every position of several stages; on
anomalous regions, which it never saw, it fails to. The anomaly map is the per-position
squared distance of the normalised features, upsampled from every stage and combined by
product (the paper) or sum; the image score is the maximum of that map. The returned map is
then lightly smoothed (``smoothing_sigma``; the score is taken before smoothing, because
smoothing dilutes small defects such as pin holes in fine textures).

Deviations, forced by offline CPU use: the teacher is the embedded EfficientNet-Lite0 (the
paper uses ResNet-18) and the student is an EfficientNet-Lite0 with random weights; the
default input is 128 px and training uses Adam (80 epochs of the good images) instead of
SGD with learning rate 0.4, so one category trains in a few minutes on two CPU cores.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods.base import COMMON_PARAMS, AnomalyModel
from workbench.core.methods.ops import parse_layers
from workbench.core.methods.schema import Param
from workbench.core.methods.stfpm.torch_model import StfpmInference, create_student, stfpm_loss
from workbench.core.methods.trainer import TRAINING_PARAMS, ImageCache, train_loop


def with_defaults(params: Sequence[Param], **defaults) -> tuple[Param, ...]:
    """``params`` with some defaults replaced (used to pick CPU-friendly defaults per method)."""
    return tuple(dataclasses.replace(p, default=defaults[p.name]) if p.name in defaults else p
                 for p in params)


class Stfpm(AnomalyModel):
    name = "stfpm"
    title = "STFPM"
    family = "Knowledge distillation (teacher-student)"
    description = ("A student network learns to reproduce a frozen pretrained teacher's multi-scale "
                   "features on good images; where it fails is anomalous. One fast forward pass at "
                   "inference, exportable to ONNX; needs a short training run.")
    method_params = (
        Param("layers", "choice", "1,2,3", "Backbone stages matched between teacher and student. "
              "Finer stages (1) localise small defects, coarser ones (3) add context.",
              choices=("1,2", "2,3", "1,2,3")),
        Param("combine", "choice", "product", "How the per-stage maps are merged: 'product' (the "
              "paper) only flags what every stage agrees on, fewer false alarms; 'sum' is more "
              "sensitive to defects seen at one scale only.", choices=("product", "sum")),
        Param("smoothing_sigma", "float", 4.0, "Gaussian smoothing of the anomaly map in pixels (the "
              "image score is taken before smoothing). More gives cleaner heat maps, less keeps "
              "thin defects sharp.", 0.0, 32.0),
        *with_defaults(TRAINING_PARAMS, epochs=80, learning_rate=1e-3),
    )

    @classmethod
    def schema(cls) -> tuple[Param, ...]:
        return with_defaults(COMMON_PARAMS, image_size=128) + cls.method_params

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        self.backbone_layers = parse_layers(self.params["layers"])
        self.student: torch.nn.Module | None = None

    def _new_student(self) -> torch.nn.Module:
        return create_student(self.backbone_spec.name, self.backbone_layers).to(self.device)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        teacher = self.extractor
        cache = ImageCache(images, self.image_size, cancel, progress)
        student = self._new_student()
        optimizer = torch.optim.Adam(student.parameters(), lr=float(self.params["learning_rate"]))

        def step_loss(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                t = teacher(x)
            return stfpm_loss(t, student(x))

        mean, std = self.normalization
        history = train_loop(step_loss, [student], optimizer, cache, mean=mean, std=std, device=self.device,
                             epochs=int(self.params["epochs"]), batch_size=int(self.params["batch_size"]),
                             seed=int(self.params["seed"]), cancel=cancel, progress=progress,
                             early_stopping=int(self.params["early_stopping"]))
        self.metadata["training_history"] = {"train_loss": history.train_loss, "val_loss": history.val_loss,
                                             "best_epoch": history.best_epoch}
        student.eval()
        self.student = student

    def export_module(self) -> torch.nn.Module:
        assert self.student is not None
        return StfpmInference(self.extractor, self.student, self.image_size, str(self.params["combine"]),
                              float(self.params["smoothing_sigma"])).eval()

    def _predict_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.export_module()(x)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        assert self.student is not None
        return {f"student.{k}": v.detach().cpu().contiguous() for k, v in self.student.state_dict().items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        student = self._new_student()
        student.load_state_dict({k[len("student."):]: v for k, v in tensors.items() if k.startswith("student.")})
        self.student = student.eval()
        self.fitted = True
