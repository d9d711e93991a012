from workbench.core.methods.efficientad.model import EfficientAd

__all__ = ["EfficientAd"]
