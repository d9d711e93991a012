from workbench.core.methods.dfm.model import Dfm

__all__ = ["Dfm"]
