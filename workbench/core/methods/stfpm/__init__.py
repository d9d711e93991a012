from workbench.core.methods.stfpm.model import Stfpm

__all__ = ["Stfpm"]
