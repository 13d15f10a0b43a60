"""auxformer.train: AuxFormer and its baselines, corpora and splits, the training loop, `auxformer-train`.

Submodules import torch; import them directly (`from auxformer.train.model import build_model`).
"""
