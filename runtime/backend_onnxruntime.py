"""`model.onnx` through onnxruntime: TensorRT, CUDA or CPU execution providers, whichever are here.

`InferenceSession.run` is thread-safe, so one session serves concurrent `predict` calls without a lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from auxformer.common.optional import require

from .manifest import METADATA_KEY, Manifest, ManifestError
from .runner import BackendError, TensorSpec, parse_device

PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GPU_PROVIDERS = PREFERRED[:2]


def choose_providers(available: list[str], device: str = "auto") -> list[Any]:
    """Providers for `device`, best first: TensorRT, CUDA, then CPU (always last, as the fallback)."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    chosen: list[Any] = []
    for name in GPU_PROVIDERS:
        if name in available:
            chosen.append((name, {"device_id": index}))
    if kind == "cuda" and not chosen:
        raise BackendError(
            f"device {device!r} asked for, but this onnxruntime has only {available}: "
            "install the `gpu` extra (onnxruntime-gpu) instead of `cpu`"
        )
    return [*chosen, "CPUExecutionProvider"]


class OnnxRuntimeBackend:
    def __init__(self, path: str | Path, providers: list | None = None, device: str = "auto", threads: int = 0):
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # one graph node at a time, each using the intra-op pool: the model is a chain, so parallel
        # execution of nodes has nothing to overlap and only adds scheduling
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = max(0, int(threads))
        options.log_severity_level = 3  # warnings about unused initializers are noise here
        path = Path(path)
        if providers is None:
            providers = choose_providers(ort.get_available_providers(), device)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types for unreadable models
            raise BackendError(f"{path}: onnxruntime cannot load it ({err})") from err
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise ManifestError(f"{path} has no {METADATA_KEY} metadata: not exported by auxformer-export")
        self.manifest = Manifest.from_json(meta[METADATA_KEY], str(path))
        self.inputs = [TensorSpec(i.name, tuple(i.shape)) for i in self.session.get_inputs()]
        self.outputs = [TensorSpec(o.name, tuple(o.shape)) for o in self.session.get_outputs()]
        self.limits = None  # onnxruntime takes any batch and length
        self.name = f"onnxruntime {ort.__version__} ({', '.join(self.session.get_providers())})"
        self._output_names = [o.name for o in self.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._output_names, self.session.run(self._output_names, feeds), strict=True))

    def close(self) -> None:
        self.session = None
