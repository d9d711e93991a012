"""Pretrained feature extractors (timm) with an offline default.

See :mod:`workbench.core.backbones.weights` for where weights come from and
:mod:`workbench.core.backbones.extractor` for the frozen multi-layer feature extractor.
"""

from workbench.core.backbones.extractor import FeatureExtractor, create_extractor
from workbench.core.backbones.weights import (
    DEFAULT_BACKBONE,
    EMBEDDED,
    IMAGENET,
    BackboneSpec,
    BackboneError,
)

__all__ = [
    "DEFAULT_BACKBONE",
    "EMBEDDED",
    "IMAGENET",
    "BackboneError",
    "BackboneSpec",
    "FeatureExtractor",
    "create_extractor",
]
