"""What a runner is: one loaded model that runs one padded batch (the four inputs of
docs/architecture.md) and returns the graph's outputs by name.

The runtime's onnxruntime and TensorRT runners implement it, and so does export's PyTorch reference,
so verification compares runners through the code that runs in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .manifest import Manifest
from .profile import Profile

DEVICES_HELP = "auto | cpu | cuda | cuda:N"


class RunnerError(RuntimeError):
    """A model file that no runner here can run (unknown kind, TensorRT refused the engine, ...)."""


class BatchError(RunnerError):
    """One batch the backend could not run (out of memory, a kernel failed): the Session fails its
    clips (after retrying them one at a time), never the whole run."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str | None, ...]  # ints where fixed, names or None where dynamic


@runtime_checkable
class Runner(Protocol):
    name: str  # what to print: "onnxruntime 1.20 (CPUExecutionProvider)"
    manifest: Manifest
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    profile: Profile | None  # the shapes it runs; None: any shape

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name for one padded batch. Must be safe to call from several threads at once.
        Raises BatchError (or MemoryError) for a batch it could not run."""
        ...

    def close(self) -> None: ...


def parse_device(device: str) -> tuple[str, int]:
    """ "auto" / "cpu" / "cuda" / "cuda:N" -> (kind, index)."""
    kind, _, index = device.partition(":")
    if kind not in ("auto", "cpu", "cuda") or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"device must be {DEVICES_HELP}, got {device!r}")
    return kind, int(index or 0)
