from workbench.core.methods.cflow.model import CFlow

__all__ = ["CFlow"]
