from workbench.core.methods.spade.model import Spade

__all__ = ["Spade"]
