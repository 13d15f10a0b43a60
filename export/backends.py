"""Backends that run one feature batch and return the named outputs (docs/architecture.md, "Data
contracts"), so verification can compare any two of them the way Polygraphy compares runners."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from auxformer.runtime.manifest import INPUTS
from auxformer.train.model import AuxFormer

from .onnx_export import ExportWrapper, ort_session

Feeds = dict[str, np.ndarray]


class Backend(Protocol):
    name: str

    def run(self, feeds: Feeds) -> dict[str, np.ndarray]: ...


class TorchBackend:
    """The trained PyTorch model through the same wrapper the export traced: the reference."""

    name = "pytorch"

    def __init__(self, model: AuxFormer, heads: list[str], output_names: list[str], temperature: float = 1.0):
        self.wrapper = ExportWrapper(model.eval(), heads, temperature).eval()
        self.output_names = output_names

    @torch.no_grad()
    def run(self, feeds: Feeds) -> dict[str, np.ndarray]:
        outputs = self.wrapper(*(torch.from_numpy(np.ascontiguousarray(feeds[k])) for k in INPUTS))
        return {name: out.numpy() for name, out in zip(self.output_names, outputs, strict=True)}


class OnnxRuntimeBackend:
    """An exported ONNX file (fp32, fp16 or Q/DQ int8) in an optimised onnxruntime CPU session."""

    def __init__(self, path: str | Path, name: str | None = None, threads: int = 0):
        self.path = Path(path)
        self.session = ort_session(self.path, threads=threads)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.name = name or f"onnxruntime ({self.path.name})"

    def run(self, feeds: Feeds) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, {k: feeds[k] for k in INPUTS})
        return dict(zip(self.output_names, outputs, strict=True))


class Memo:
    """A backend whose outputs are computed once per feed dict: the PyTorch reference is shared by the
    fp32, fp16 and int8 verifications of one export."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.name = backend.name
        self._seen: dict[int, tuple[Feeds, dict[str, np.ndarray]]] = {}

    def run(self, feeds: Feeds) -> dict[str, np.ndarray]:
        hit = self._seen.get(id(feeds))
        if hit is None or hit[0] is not feeds:  # the feeds are kept, so an id is never reused meanwhile
            hit = (feeds, self.backend.run(feeds))
            self._seen[id(feeds)] = hit
        return hit[1]
