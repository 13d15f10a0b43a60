"""Which runner a model file gets, and the check that its I/O is the one its manifest promises.

`model.onnx` -> onnxruntime, `model.plan` -> TensorRT; each library is imported only when a model needs it.
"""

from __future__ import annotations

from pathlib import Path

from .manifest import INPUTS, ManifestError
from .onnxruntime_runner import OnnxRuntimeOptions, OnnxRuntimeRunner
from .runner import Runner, RunnerError

BACKENDS = ("auto", "onnxruntime", "tensorrt")
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")


def load_runner(
    path: str | Path, backend: str = "auto", device: str = "auto", onnxruntime: OnnxRuntimeOptions | None = None
) -> Runner:
    """The runner for `path` (`.onnx` -> onnxruntime, `.plan` / `.engine` -> TensorRT) on `device`, its
    I/O checked against its manifest. `onnxruntime`: the session options of an ONNX model."""
    path = Path(path)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    kind = backend
    if kind == "auto":
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            kind = "onnxruntime"
        elif suffix in ENGINE_SUFFIXES:
            kind = "tensorrt"
        else:
            raise RunnerError(f"{path}: cannot tell the backend from the suffix {suffix!r}; pass backend=")
    if kind == "onnxruntime":
        opened: Runner = OnnxRuntimeRunner(path, device, onnxruntime)
    else:
        if onnxruntime is not None and onnxruntime.providers is not None:
            raise ValueError("providers are onnxruntime's; a TensorRT engine takes device= only")
        from .tensorrt_runner import TensorRTRunner

        opened = TensorRTRunner(path, device=device)
    try:
        check_io(opened)
    except ManifestError:
        opened.close()
        raise
    return opened


def check_io(runner: Runner) -> None:
    """The model's inputs and outputs are the ones its manifest promises (docs/architecture.md), saying
    why not."""
    manifest, source = runner.manifest, runner.name
    inputs = {t.name: t.shape for t in runner.inputs}
    if sorted(inputs) != sorted(INPUTS):
        raise ManifestError(f"{source}: inputs are {sorted(inputs)}, expected {list(INPUTS)}")
    for name, dim in (("audio", manifest.features.audio_dim), ("video", manifest.video_dim)):
        found = inputs[name][-1] if inputs[name] else None
        if isinstance(found, int) and found != dim:
            raise ManifestError(f"{source}: input {name} has {found} features, its manifest says {dim}")
    missing = [n for n in manifest.output_names if n not in {t.name for t in runner.outputs}]
    if missing:
        raise ManifestError(f"{source}: outputs {missing} named by the manifest (heads {manifest.heads}) are missing")
