"""What an inference backend is to the session, and which one a model file gets.

A backend runs one padded batch (the four inputs of docs/architecture.md) and returns the graph's outputs by name.
`model.onnx` -> onnxruntime, `model.plan` -> TensorRT; both are imported only when used.
"""

from __future__ import annotations

from pathlib import Path

from .manifest import INPUTS, ManifestError
from .runner import Backend, BackendError

BACKENDS = ("auto", "onnxruntime", "tensorrt")


def open_backend(
    path: str | Path, backend: str = "auto", providers: list | None = None, device: str = "auto", threads: int = 0
) -> Backend:
    """The backend for `path`: `.onnx` -> onnxruntime, `.plan` / `.engine` -> TensorRT."""
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
        elif suffix in (".plan", ".engine", ".trt"):
            kind = "tensorrt"
        else:
            raise BackendError(f"{path}: cannot tell the backend from the suffix {suffix!r}; pass backend=")
    if kind == "onnxruntime":
        from .backend_onnxruntime import OnnxRuntimeBackend

        opened: Backend = OnnxRuntimeBackend(path, providers=providers, device=device, threads=threads)
    else:
        if providers is not None:
            raise ValueError("providers are onnxruntime's; a TensorRT engine takes device= only")
        from .backend_tensorrt import TensorRTBackend

        opened = TensorRTBackend(path, device=device)
    try:
        check_io(opened)
    except ManifestError:
        opened.close()
        raise
    return opened


def check_io(backend: Backend) -> None:
    """The model's inputs and outputs are the ones its manifest promises (docs/architecture.md), saying
    why not."""
    manifest, source = backend.manifest, backend.name
    inputs = {t.name: t.shape for t in backend.inputs}
    if sorted(inputs) != sorted(INPUTS):
        raise ManifestError(f"{source}: inputs are {sorted(inputs)}, expected {list(INPUTS)}")
    for name, dim in (("audio", manifest.features.audio_dim), ("video", manifest.video_dim)):
        found = inputs[name][-1] if inputs[name] else None
        if isinstance(found, int) and found != dim:
            raise ManifestError(f"{source}: input {name} has {found} features, its manifest says {dim}")
    missing = [n for n in manifest.output_names if n not in {t.name for t in backend.outputs}]
    if missing:
        raise ManifestError(f"{source}: outputs {missing} named by the manifest (heads {manifest.heads}) are missing")
