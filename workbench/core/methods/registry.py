"""The method registry: the one list the CLI and the GUI read methods from.

Adding a method = a folder under ``workbench/core/methods/`` plus one line here.
"""

from __future__ import annotations

from workbench.core.methods.autoencoder import SsimAutoencoder
from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.cflow import CFlow
from workbench.core.methods.cutpaste import CutPaste
from workbench.core.methods.dfm import Dfm
from workbench.core.methods.draem import Draem
from workbench.core.methods.efficientad import EfficientAd
from workbench.core.methods.fastflow import FastFlow
from workbench.core.methods.ganomaly import Ganomaly
from workbench.core.methods.padim import Padim
from workbench.core.methods.patchcore import PatchCore
from workbench.core.methods.reverse_distillation import ReverseDistillation
from workbench.core.methods.spade import Spade
from workbench.core.methods.stfpm import Stfpm

# Listed as the GUI shows them: memory-bank / density baselines first (fast, no training),
# then teacher-student, normalizing flows, self-supervised and reconstruction methods.
METHODS: dict[str, type[AnomalyModel]] = {cls.name: cls for cls in (
    PatchCore, Padim, Spade, Dfm,
    Stfpm, ReverseDistillation, EfficientAd,
    FastFlow, CFlow,
    CutPaste, Draem, SsimAutoencoder, Ganomaly,
)}
DEFAULT_METHOD = PatchCore.name


def get_method(name: str) -> type[AnomalyModel]:
    try:
        return METHODS[name.lower()]
    except KeyError:
        raise ValueError(f"Unknown method '{name}'. Available: {', '.join(METHODS)}.") from None


def create_method(name: str, device=None, **params) -> AnomalyModel:
    return get_method(name)(device=device, **params)
