"""Pieces several methods share (inference-module base, training loop, feature caches, coreset,
nearest-neighbour search, flow blocks, reconstruction blocks, tensor ops). Method folders import
from here, never from each other."""
