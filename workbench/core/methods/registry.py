"""The method registry: the one list the CLI and the GUI read methods from.

Adding a method = a folder under ``workbench/core/methods/`` plus one line here.
"""

from __future__ import annotations

from workbench.core.methods.base import AnomalyModel
from workbench.core.methods.padim import Padim
from workbench.core.methods.patchcore import PatchCore

METHODS: dict[str, type[AnomalyModel]] = {cls.name: cls for cls in (PatchCore, Padim)}
DEFAULT_METHOD = PatchCore.name


def get_method(name: str) -> type[AnomalyModel]:
    try:
        return METHODS[name.lower()]
    except KeyError:
        raise ValueError(f"Unknown method '{name}'. Available: {', '.join(METHODS)}.") from None


def create_method(name: str, device=None, **params) -> AnomalyModel:
    return get_method(name)(device=device, **params)
