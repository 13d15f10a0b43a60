"""A FAKE of the TensorRT runtime API and of `pycuda.driver`, recording every call. No GPU, no TensorRT.

It lets the tests check what our TensorRT runner asks of TensorRT and CUDA: which API (by name at
TensorRT >= 8.5, by binding index before), input shapes per batch, buffer reuse, one stream, a
current CUDA context on the calling thread, and no two executions at once on one context.

The "engine" is a small JSON file naming an ONNX model and a profile. Executing it reads the inputs
from the fake device memory at the addresses it was given, runs the ONNX model with onnxruntime, and
writes the outputs back, so the runner's whole data path is exercised. It is not TensorRT.
"""

from __future__ import annotations

import enum
import itertools
import json
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from auxformer.runtime.manifest import INPUTS
from auxformer.runtime.profile import Profile

from .runtime_support import sidecar

_addresses = itertools.count(0x1000, 0x1000)


@dataclass
class Recorder:
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    overlaps: int = 0  # executions that started while another was running on the same context

    def __call__(self, name: str, *args: Any) -> None:
        with self.lock:
            self.calls.append((name, args))

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]

    def args(self, name: str) -> list[tuple[Any, ...]]:
        return [a for n, a in self.calls if n == name]


def make_fake_cuda(record: Recorder) -> types.ModuleType:
    """A stand-in for `pycuda.driver`: device memory is host bytes keyed by fake addresses."""
    cuda = types.ModuleType("fake_pycuda_driver")
    memory: dict[int, bytearray] = {}
    current = threading.local()
    cuda.memory = memory  # type: ignore[attr-defined]

    def stack() -> list[Any]:
        if not hasattr(current, "stack"):
            current.stack = []
        return current.stack

    class Context:
        def push(self) -> None:
            record("ctx.push")
            stack().append(self)

        @staticmethod
        def pop() -> None:
            record("ctx.pop")
            stack().pop()

        def detach(self) -> None:
            record("ctx.detach")

    class Device:
        def __init__(self, index: int):
            record("Device", index)

        def retain_primary_context(self) -> Context:
            return Context()

    class Allocation:
        def __init__(self, nbytes: int):
            self.address = next(_addresses)
            memory[self.address] = bytearray(nbytes)

        def __int__(self) -> int:
            return self.address

        def free(self) -> None:
            record("free", self.address)
            del memory[self.address]

    class Stream:
        def __init__(self) -> None:
            self.handle = next(_addresses)
            record("Stream", self.handle)

        def synchronize(self) -> None:
            record("synchronize", self.handle)

    def mem_alloc(nbytes: int) -> Allocation:
        record("mem_alloc", nbytes)
        return Allocation(nbytes)

    def memcpy_htod_async(dst: Allocation, src: np.ndarray, stream: Stream) -> None:
        record("htod", int(dst), src.nbytes, stream.handle)
        memory[int(dst)][: src.nbytes] = src.tobytes()

    def memcpy_dtoh_async(dst: np.ndarray, src: Allocation, stream: Stream) -> None:
        record("dtoh", int(src), dst.nbytes, stream.handle)
        flat = dst.reshape(-1).view(np.uint8)
        flat[:] = np.frombuffer(bytes(memory[int(src)][: dst.nbytes]), np.uint8)

    cuda.init = lambda: record("init")  # type: ignore[attr-defined]
    cuda.Context = Context  # type: ignore[attr-defined]
    cuda.Device = Device  # type: ignore[attr-defined]
    cuda.Stream = Stream  # type: ignore[attr-defined]
    cuda.mem_alloc = mem_alloc  # type: ignore[attr-defined]
    cuda.pagelocked_empty = lambda n, dtype: np.empty(n, dtype)  # type: ignore[attr-defined]
    cuda.memcpy_htod_async = memcpy_htod_async  # type: ignore[attr-defined]
    cuda.memcpy_dtoh_async = memcpy_dtoh_async  # type: ignore[attr-defined]
    cuda.context_depth = lambda: len(stack())  # type: ignore[attr-defined]
    return cuda


def make_fake_tensorrt(version: str, cuda: types.ModuleType, record: Recorder) -> types.ModuleType:
    """A stand-in for `tensorrt` at `version`: the name-based API from 8.5 on, binding indices before."""
    major, minor = (int(x) for x in version.split(".")[:2])
    named = (major, minor) >= (8, 5)
    trt = types.ModuleType("fake_tensorrt")
    trt.__version__ = version
    trt.TensorIOMode = enum.Enum("TensorIOMode", ["INPUT", "OUTPUT"])  # type: ignore[attr-defined]
    trt.DataType = enum.Enum("DataType", ["FLOAT", "HALF", "BOOL"])  # type: ignore[attr-defined]
    dtypes = {trt.DataType.FLOAT: np.float32, trt.DataType.HALF: np.float16, trt.DataType.BOOL: np.bool_}
    trt.nptype = lambda dt: dtypes[dt]  # type: ignore[attr-defined]

    class Logger:
        WARNING = 2

        def __init__(self, severity: int):
            record("Logger", severity)

    class Engine:
        def __init__(self, spec: dict[str, Any]):
            self.session = ort.InferenceSession(spec["onnx"], providers=["CPUExecutionProvider"])
            self.profile = spec["profile"]  # name -> [min, opt, max] shapes
            self.io = [*INPUTS, *(o.name for o in self.session.get_outputs())]
            self.classes = self.session.get_outputs()[0].shape[-1]

        def dtype(self, name: str) -> Any:
            return trt.DataType.BOOL if name.endswith("_mask") else trt.DataType.FLOAT

        def create_execution_context(self) -> Context:
            record("create_execution_context")
            return Context(self)

        # TensorRT >= 8.5
        @property
        def num_io_tensors(self) -> int:
            assert named, "num_io_tensors does not exist before TensorRT 8.5"
            return len(self.io)

        def get_tensor_name(self, i: int) -> str:
            return self.io[i]

        def get_tensor_mode(self, name: str) -> Any:
            return trt.TensorIOMode.INPUT if name in INPUTS else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> Any:
            return self.dtype(name)

        def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
            assert profile == 0
            return [tuple(s) for s in self.profile[name]]

        # TensorRT < 8.5
        @property
        def num_bindings(self) -> int:
            assert not named, "the binding API is gone from TensorRT 10 (this fake: use names from 8.5 on)"
            return len(self.io)

        def get_binding_name(self, i: int) -> str:
            return self.io[i]

        def binding_is_input(self, i: int) -> bool:
            return self.io[i] in INPUTS

        def get_binding_dtype(self, i: int) -> Any:
            return self.dtype(self.io[i])

        def get_profile_shape(self, profile: int, i: int) -> list[tuple[int, ...]]:
            return self.get_tensor_profile_shape(self.io[i], profile)

    class Context:
        def __init__(self, engine: Engine):
            self.engine = engine
            self.shapes: dict[str, tuple[int, ...]] = {}
            self.addresses: dict[str, int] = {}
            self.busy = False

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            record("set_input_shape", name, tuple(shape))
            low, _, high = self.engine.profile[name]
            if not all(lo <= n <= hi for n, lo, hi in zip(shape, low, high, strict=True)):
                return False
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return (self.shapes["audio"][0], self.engine.classes)

        def set_tensor_address(self, name: str, address: int) -> None:
            record("set_tensor_address", name, address)
            self.addresses[name] = address

        def execute_async_v3(self, stream_handle: int) -> bool:
            assert named
            record("execute_async_v3", stream_handle)
            return self._execute()

        def set_binding_shape(self, i: int, shape: tuple[int, ...]) -> bool:
            record("set_binding_shape", i, tuple(shape))
            return self.set_input_shape(self.engine.io[i], shape)

        def get_binding_shape(self, i: int) -> tuple[int, ...]:
            return self.get_tensor_shape(self.engine.io[i])

        def execute_async_v2(self, bindings: list[int], stream_handle: int) -> bool:
            assert not named
            record("execute_async_v2", stream_handle)
            self.addresses = dict(zip(self.engine.io, bindings, strict=True))
            return self._execute()

        def _execute(self) -> bool:
            assert cuda.context_depth() > 0, "executed without a current CUDA context"
            if self.busy:
                record.overlaps += 1
            self.busy = True
            try:
                time.sleep(0.002)  # widen the window in which an unlocked caller would overlap
                feeds = {}
                for name in INPUTS:
                    dtype = np.dtype(dtypes[self.engine.dtype(name)])
                    shape = self.shapes[name]
                    raw = bytes(cuda.memory[self.addresses[name]][: int(np.prod(shape)) * dtype.itemsize])
                    feeds[name] = np.frombuffer(raw, dtype).reshape(shape)
                for name, value in zip(
                    self.engine.io[len(INPUTS) :], self.engine.session.run(None, feeds), strict=True
                ):
                    data = np.ascontiguousarray(value, np.float32).tobytes()
                    cuda.memory[self.addresses[name]][: len(data)] = data
            finally:
                self.busy = False
            return True

    class Runtime:
        def __init__(self, logger: Logger):
            record("Runtime")

        def deserialize_cuda_engine(self, blob: bytes) -> Engine | None:
            record("deserialize_cuda_engine", len(blob))
            try:
                return Engine(json.loads(blob))
            except (ValueError, KeyError):
                return None  # what TensorRT does with an engine it cannot read

    trt.Logger = Logger  # type: ignore[attr-defined]
    trt.Runtime = Runtime  # type: ignore[attr-defined]
    return trt


def write_fake_plan(onnx_path: Path, plan_path: Path, shapes: dict[str, dict[str, int]], video_dim: int) -> Path:
    """A fake `model.plan` (JSON) for `onnx_path` with profile `shapes`, and its `model.plan.json`."""
    profile = Profile.from_dict(shapes).input_shapes(video_dim)
    plan_path.write_text(json.dumps({"onnx": str(onnx_path), "profile": profile}))
    sidecar(onnx_path, plan_path, {"tensorrt_version": "fake", "gpu": "none", "profile": shapes})
    return plan_path
