"""`model.onnx` (fp32, fp16 or Q/DQ int8) through onnxruntime: TensorRT, CUDA or CPU execution
providers, whichever are here. Export verifies its ONNX files through this runner too.

`InferenceSession.run` is thread-safe, so one session serves concurrent `predict` calls without a lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.common.optional import require

from .manifest import Manifest
from .runner import BatchError, RunnerError, TensorSpec, parse_device

PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GPU_PROVIDERS = PREFERRED[:2]
OPTIMIZATION_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    providers: list | None = None  # explicit providers; None: chosen for the runner's device
    threads: int = 0  # intra-op threads; 0: onnxruntime's default (one per core)
    optimization: str = "all"  # graph optimisation level: disable | basic | extended | all
    # idle intra-op workers spin for new work: lower latency on an idle machine, but the runtime shares
    # its CPU (feature extraction, a stream's decoding, audio and faces threads, other processes), and
    # spinning workers take cores from that work. Measured on the 2-core machine, shared: the paper model,
    # 15 batches of 16 clips, 2 threads: spinning 33-36 s wall and CPU, not 22-24 s; Session.stream over a
    # 1-min 480p file: 15.2-16.4 CPU s spinning, 12.2-12.6 not, the same wall time
    spinning: bool = False
    optimized_model_path: Path | None = None  # where onnxruntime saves the graph it optimised

    def __post_init__(self) -> None:
        if self.optimization not in OPTIMIZATION_LEVELS:
            raise ValueError(f"optimization must be one of {', '.join(OPTIMIZATION_LEVELS)}, got {self.optimization!r}")


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
        raise RunnerError(
            f"device {device!r} asked for, but this onnxruntime has only {available}: "
            "install the `gpu` extra (onnxruntime-gpu) instead of `cpu`"
        )
    return [*chosen, "CPUExecutionProvider"]


def inference_session(path: str | Path, device: str = "auto", options: OnnxRuntimeOptions | None = None) -> Any:
    """An onnxruntime InferenceSession for `path` on `device`, set up by `options` (the one place
    sessions of exported models are made)."""
    ort = require("onnxruntime")
    options = options or OnnxRuntimeOptions()
    settings = ort.SessionOptions()
    settings.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION_LEVELS[options.optimization])
    # one graph node at a time, each using the intra-op pool: the model is a chain, so parallel
    # execution of nodes has nothing to overlap and only adds scheduling
    settings.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    settings.intra_op_num_threads = max(0, int(options.threads))
    settings.log_severity_level = 3  # warnings about unused initializers are noise here
    if not options.spinning:
        settings.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if options.optimized_model_path is not None:
        settings.optimized_model_filepath = str(options.optimized_model_path)
    providers = options.providers
    if providers is None:
        providers = choose_providers(ort.get_available_providers(), device)
    try:
        return ort.InferenceSession(str(path), settings, providers=providers)
    except Exception as err:  # onnxruntime raises its own exception types for unreadable models
        raise RunnerError(f"{path}: onnxruntime cannot load it ({err})") from err


class OnnxRuntimeRunner:
    def __init__(self, path: str | Path, device: str = "auto", options: OnnxRuntimeOptions | None = None):
        ort = require("onnxruntime")
        path = Path(path)
        self.path = path
        self.session = inference_session(path, device, options)
        self.manifest = Manifest.from_metadata(self.session.get_modelmeta().custom_metadata_map, str(path))
        self.inputs = [TensorSpec(i.name, tuple(i.shape)) for i in self.session.get_inputs()]
        self.outputs = [TensorSpec(o.name, tuple(o.shape)) for o in self.session.get_outputs()]
        self.profile = None  # onnxruntime takes any batch and length
        providers = ", ".join(self.session.get_providers())
        self.name = f"onnxruntime {ort.__version__} ({providers}; {self.manifest.precision})"
        self._output_names = [o.name for o in self.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = {t.name: feeds[t.name] for t in self.inputs}
        try:
            outputs = self.session.run(self._output_names, inputs)
        except MemoryError:
            raise
        except Exception as err:  # onnxruntime's own types (Fail, RuntimeException: "Failed to allocate memory")
            raise BatchError(f"onnxruntime could not run the batch: {type(err).__name__}: {err}") from err
        return dict(zip(self._output_names, outputs, strict=True))

    def close(self) -> None:
        self.session = None
