from workbench.core.methods.autoencoder.model import SsimAutoencoder

__all__ = ["SsimAutoencoder"]
