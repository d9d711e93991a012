from workbench.core.methods.draem.model import Draem

__all__ = ["Draem"]
