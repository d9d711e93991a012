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

from collections.abc import Sequence

import numpy as np
import torch

from workbench.core.jobs import CancelToken, ProgressCallback
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.components.ops import parse_layers
from workbench.core.methods.components.training import TRAINING_PARAMS, ImageCache, train_method
from workbench.core.methods.schema import Param, with_defaults
from workbench.core.methods.stfpm.torch_model import StfpmModel, create_student, stfpm_loss


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

    common_defaults = {"image_size": 128}
    tiny_params = {"image_size": 64, "epochs": 3, "batch_size": 4, "learning_rate": 3e-3}

    def __init__(self, device=None, **params) -> None:
        super().__init__(device, **params)
        self.backbone_layers = parse_layers(self.p.layers)

    def _new_module(self, tensors: dict[str, torch.Tensor] | None = None) -> StfpmModel:
        teacher = self.extractor  # built first: the student's seeded initialisation comes after it
        student = create_student(self.backbone_spec.name, self.backbone_layers).to(self.device)
        return StfpmModel(teacher, student, self.image_size, self.p.combine, self.p.smoothing_sigma)

    def _fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None,
             cancel: CancelToken) -> None:
        cache = ImageCache(images, self.image_size, cancel, progress)
        module = self._new_module()
        teacher, student = module.teacher, module.student
        optimizer = torch.optim.Adam(student.parameters(), lr=self.p.learning_rate)

        def step_loss(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                t = teacher(x)
            return stfpm_loss(t, student(x))

        history = train_method(self, step_loss, [student], optimizer, cache, cancel, progress)
        self.metadata["training_history"] = history.as_metadata()
        self._set_module(module)
