from workbench.core.methods.ganomaly.model import Ganomaly

__all__ = ["Ganomaly"]
