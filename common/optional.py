"""Lazy imports of heavy or optional packages, with a one-line hint naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

# module name -> (pip extra, what it is for)
_EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("train", "training and export"),
    "onnx": ("train", "ONNX export"),
    "onnxscript": ("train", "ONNX export"),
    "onnxruntime": ("cpu", "ONNX inference (use the `gpu` extra for onnxruntime-gpu)"),
    "tensorrt": ("gpu", "TensorRT engines"),
    "pycuda": ("gpu", "TensorRT engines"),
    "matplotlib": ("media", "plots"),
    "scipy": ("train", "statistical tests"),
    "cv2": ("media", "face detection (opencv-python-headless<5)"),
    "opensmile": ("media", "audio features"),
    "av": ("media", "media decoding (PyAV)"),
}


class MissingDependency(ImportError):
    """An optional package is not installed; the message says which extra provides it."""


def require(module: str) -> ModuleType:
    """Import `module`, or raise MissingDependency with the `pip install` line that fixes it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra, purpose = _EXTRAS.get(module.split(".")[0], ("", "this feature"))
        hint = f"pip install 'auxformer[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependency(f"{module} is needed for {purpose}: {hint}") from err
