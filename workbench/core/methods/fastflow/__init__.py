from workbench.core.methods.fastflow.model import FastFlow

__all__ = ["FastFlow"]
