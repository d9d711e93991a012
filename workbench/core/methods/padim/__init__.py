from workbench.core.methods.padim.model import Padim

__all__ = ["Padim"]
