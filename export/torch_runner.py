"""The trained PyTorch model as a Runner (`auxformer.runtime.runner`): the reference export verification
compares every exported model against. It runs through the same ExportWrapper the export traces, so
both sides have the outputs of docs/architecture.md, temperature included."""

from __future__ import annotations

import numpy as np
import torch

from auxformer.runtime.contracts import DYNAMIC_AXES
from auxformer.runtime.manifest import INPUTS, Manifest
from auxformer.runtime.runner import TensorSpec
from auxformer.train.model import AuxFormer

from .onnx_export import ExportWrapper


class TorchRunner:
    name = "pytorch"
    profile = None  # eager PyTorch takes any batch and length

    def __init__(self, model: AuxFormer, manifest: Manifest):
        self.manifest = manifest
        self.wrapper = ExportWrapper(model.eval(), manifest.heads, manifest.temperature).eval()
        feature_dims = {"audio": manifest.features.audio_dim, "video": manifest.video_dim}
        self.inputs = [
            TensorSpec(name, (*DYNAMIC_AXES[name], *([feature_dims[name]] if name in feature_dims else [])))
            for name in INPUTS
        ]
        self.outputs = [TensorSpec(name, ("batch", None)) for name in manifest.output_names]

    @torch.no_grad()
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.wrapper(*(torch.from_numpy(np.ascontiguousarray(feeds[k])) for k in INPUTS))
        return {t.name: out.numpy() for t, out in zip(self.outputs, outputs, strict=True)}

    def close(self) -> None:
        """Nothing to release: the model belongs to the caller."""
