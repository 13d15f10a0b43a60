"""What an inference backend is to the session, and which one a model file gets.

A backend runs one padded batch (DESIGN.md's four inputs) and returns the graph's outputs by name.
`model.onnx` -> onnxruntime, `model.plan` -> TensorRT; both are imported only when used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .bucketing import ShapeLimits
from .contracts import AUDIO_DIM
from .manifest import INPUTS, Manifest, ManifestError

BACKENDS = ("auto", "onnxruntime", "tensorrt")
DEVICES_HELP = "auto | cpu | cuda | cuda:N"


class BackendError(RuntimeError):
    """A model file that no backend here can run (unknown kind, TensorRT refused the engine, ...)."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str | None, ...]  # ints where fixed, names or None where dynamic


class Backend(Protocol):
    name: str  # what to print: "onnxruntime 1.20 (CPUExecutionProvider)"
    manifest: Manifest
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    limits: ShapeLimits | None  # None: any shape

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name for one padded batch. Must be safe to call from several threads at once."""
        ...

    def close(self) -> None: ...


def parse_device(device: str) -> tuple[str, int]:
    """ "auto" / "cpu" / "cuda" / "cuda:N" -> (kind, index)."""
    kind, _, index = device.partition(":")
    if kind not in ("auto", "cpu", "cuda") or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"device must be {DEVICES_HELP}, got {device!r}")
    return kind, int(index or 0)


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
    """The model's inputs and outputs are the ones its manifest promises (DESIGN.md I/O), saying why not."""
    manifest, source = backend.manifest, backend.name
    inputs = {t.name: t.shape for t in backend.inputs}
    if sorted(inputs) != sorted(INPUTS):
        raise ManifestError(f"{source}: inputs are {sorted(inputs)}, expected {list(INPUTS)}")
    for name, dim in (("audio", int(manifest.features.get("audio_dim", AUDIO_DIM))), ("video", manifest.video_dim)):
        found = inputs[name][-1] if inputs[name] else None
        if isinstance(found, int) and found != dim:
            raise ManifestError(f"{source}: input {name} has {found} features, its manifest says {dim}")
    missing = [n for n in manifest.output_names if n not in {t.name for t in backend.outputs}]
    if missing:
        raise ManifestError(f"{source}: outputs {missing} named by the manifest (heads {manifest.heads}) are missing")
