from workbench.core.methods.patchcore.model import PatchCore

__all__ = ["PatchCore"]
