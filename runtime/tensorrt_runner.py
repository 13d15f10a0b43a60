"""`model.plan` through TensorRT, with pycuda for device memory and the stream.

- The manifest is `model.plan.json` beside the engine; the engine's optimization profile is read
  from the engine itself and must agree with the manifest's `shapes`.
- Profile-aware: every batch's input shapes are set on the execution context and checked against
  the profile first (the session already cuts batches to fit: `profile`).
- Device buffers (and pinned host staging buffers) are grown when a batch needs more and reused
  otherwise; one CUDA stream per runner.
- An execution context is not thread-safe: `run` holds a lock, so concurrent `predict` calls take
  turns on the GPU (results are unaffected).
- TensorRT >= 8.5 addresses I/O tensors by name (`set_input_shape`, `set_tensor_address`,
  `execute_async_v3`; the only API left in TensorRT 10); older versions (8.2 on JetPack 4.6, 8.4)
  use binding indices (`set_binding_shape`, `execute_async_v2`). The version picks one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.common.optional import require

from .manifest import INPUTS, Manifest, ManifestError
from .profile import Profile, Range
from .runner import BatchError, RunnerError, TensorSpec, parse_device

NAMED_TENSORS_SINCE = (8, 5)


def parse_version(text: str) -> tuple[int, int]:
    major, minor = [*text.split("."), "0"][:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


@dataclass(frozen=True)
class IoTensor:
    name: str
    index: int  # binding index (the pre-8.5 API addresses tensors by it)
    is_input: bool
    dtype: np.dtype
    profile: tuple[tuple[int, ...], ...] | None  # (min, opt, max) shapes of an input under profile 0


class _EngineIO:
    """What both APIs share: a list of the engine's I/O tensors from per-index accessors."""

    def __init__(self, trt: Any, engine: Any):
        self.trt, self.engine = trt, engine

    def count(self) -> int:
        raise NotImplementedError

    def describe(self, i: int) -> tuple[str, bool, Any, Any]:
        """(name, is_input, TensorRT dtype, profile-0 shapes or None) of tensor `i`."""
        raise NotImplementedError

    def tensors(self) -> list[IoTensor]:
        out = []
        for i in range(self.count()):
            name, is_input, trt_dtype, profile = self.describe(i)
            out.append(IoTensor(name, i, is_input, np.dtype(self.trt.nptype(trt_dtype)), _shapes(profile)))
        return out


class NamedTensors(_EngineIO):
    """TensorRT >= 8.5: I/O tensors by name."""

    def count(self) -> int:
        return int(self.engine.num_io_tensors)

    def describe(self, i: int) -> tuple[str, bool, Any, Any]:
        name = self.engine.get_tensor_name(i)
        is_input = self.engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT
        profile = self.engine.get_tensor_profile_shape(name, 0) if is_input else None
        return name, is_input, self.engine.get_tensor_dtype(name), profile

    def set_input_shape(self, context: Any, tensor: IoTensor, shape: tuple[int, ...]) -> bool:
        return bool(context.set_input_shape(tensor.name, shape))

    def output_shape(self, context: Any, tensor: IoTensor) -> tuple[int, ...]:
        return tuple(context.get_tensor_shape(tensor.name))

    def bind(self, context: Any, addresses: dict[str, int]) -> None:
        for name, address in addresses.items():
            context.set_tensor_address(name, address)

    def execute(self, context: Any, stream: Any) -> bool:
        return bool(context.execute_async_v3(stream.handle))


class Bindings(_EngineIO):
    """TensorRT < 8.5: I/O tensors by binding index, all addresses passed at execution."""

    def __init__(self, trt: Any, engine: Any):
        super().__init__(trt, engine)
        self._addresses: list[int] = [0] * engine.num_bindings
        self._index = {engine.get_binding_name(i): i for i in range(engine.num_bindings)}

    def count(self) -> int:
        return int(self.engine.num_bindings)

    def describe(self, i: int) -> tuple[str, bool, Any, Any]:
        is_input = bool(self.engine.binding_is_input(i))
        profile = self.engine.get_profile_shape(0, i) if is_input else None
        return self.engine.get_binding_name(i), is_input, self.engine.get_binding_dtype(i), profile

    def set_input_shape(self, context: Any, tensor: IoTensor, shape: tuple[int, ...]) -> bool:
        return bool(context.set_binding_shape(tensor.index, shape))

    def output_shape(self, context: Any, tensor: IoTensor) -> tuple[int, ...]:
        return tuple(context.get_binding_shape(tensor.index))

    def bind(self, context: Any, addresses: dict[str, int]) -> None:
        for name, address in addresses.items():
            self._addresses[self._index[name]] = address

    def execute(self, context: Any, stream: Any) -> bool:
        return bool(context.execute_async_v2(bindings=list(self._addresses), stream_handle=stream.handle))


def _shapes(profile: Any) -> tuple[tuple[int, ...], ...] | None:
    return None if profile is None else tuple(tuple(int(d) for d in shape) for shape in profile)


class DeviceBuffers:
    """One device buffer and one pinned host buffer per tensor, grown on demand and reused."""

    def __init__(self, cuda: Any):
        self.cuda = cuda
        self._device: dict[str, Any] = {}
        self._host: dict[str, np.ndarray] = {}
        self.allocations = 0  # device allocations made so far (reuse keeps this flat)

    def get(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> tuple[Any, np.ndarray]:
        """(device allocation, host view of `shape`) with room for `shape` of `dtype`."""
        nbytes = max(1, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        host = self._host.get(name)
        if host is None or host.nbytes < nbytes:
            if name in self._device:
                self._device[name].free()
            self._device[name] = self.cuda.mem_alloc(nbytes)
            self._host[name] = host = self.cuda.pagelocked_empty(nbytes, np.uint8)
            self.allocations += 1
        view = host[: int(np.prod(shape, dtype=np.int64)) * dtype.itemsize].view(dtype).reshape(shape)
        return self._device[name], view

    def free(self) -> None:
        for allocation in self._device.values():
            allocation.free()
        self._device.clear()
        self._host.clear()


class TensorRTRunner:
    def __init__(self, path: str | Path, device: str = "auto", manifest: Manifest | None = None):
        kind, index = parse_device(device)
        if kind == "cpu":
            raise RunnerError(f"{path}: a TensorRT engine runs on a GPU; use the ONNX model on the CPU")
        path = Path(path)
        self.manifest = manifest or Manifest.read_sidecar(path)
        trt = require("tensorrt")
        cuda = require("pycuda.driver")
        self.trt, self.cuda = trt, cuda
        self.version = parse_version(trt.__version__)
        cuda.init()
        self._cuda_context = cuda.Device(index).retain_primary_context()
        self._lock = threading.Lock()
        self._closed = False
        try:
            self._load(path, index)
        except BaseException:
            self._cuda_context.detach()  # the retained context is ours to give back on any failure
            raise

    def _load(self, path: Path, index: int) -> None:
        trt, cuda = self.trt, self.cuda
        with self._on_device():
            self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            if (self.manifest.engine or {}).get("version_compatible"):
                # a version-compatible plan embeds the lean runtime: host code TensorRT must be allowed to run
                self._runtime.engine_host_code_allowed = True
            self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if self.engine is None:
                built = self.manifest.engine or {}
                raise RunnerError(
                    f"{path}: TensorRT {trt.__version__} could not load this engine (built with TensorRT "
                    f"{built.get('tensorrt_version', '?')} for {built.get('gpu', '?')}); rebuild it here with "
                    "auxformer-export"
                )
            api = NamedTensors if self.version >= NAMED_TENSORS_SINCE else Bindings
            self.api: NamedTensors | Bindings = api(trt, self.engine)
            self.context = self.engine.create_execution_context()
            self.stream = cuda.Stream()
        self.buffers = DeviceBuffers(cuda)
        self.tensors = {t.name: t for t in self.api.tensors()}
        # an input's largest profile shape carries its fixed feature dim, which check_io compares
        self.inputs = [TensorSpec(t.name, t.profile[2] if t.profile else ()) for t in self._io(inputs=True)]
        self.outputs = [TensorSpec(t.name, ()) for t in self._io(inputs=False)]
        self.profile = self._profile()
        self.name = f"TensorRT {trt.__version__} (cuda:{index}, {self.manifest.precision})"

    def _io(self, inputs: bool) -> list[IoTensor]:
        return [t for t in self.tensors.values() if t.is_input == inputs]

    @contextlib.contextmanager
    def _on_device(self) -> Iterator[None]:
        """Make this runner's CUDA context current on the calling thread (any thread may call run)."""
        self._cuda_context.push()
        try:
            yield
        finally:
            self.cuda.Context.pop()

    def _profile(self) -> Profile | None:
        """The engine's optimization profile, refusing a manifest that disagrees with it."""
        audio, video = self.tensors.get("audio"), self.tensors.get("video")
        if audio is None or video is None or audio.profile is None or video.profile is None:
            return None  # check_io reports the missing inputs
        (a_low, a_opt, a_high), (v_low, v_opt, v_high) = audio.profile, video.profile
        profile = Profile(
            batch=Range(a_low[0], a_opt[0], a_high[0]),
            audio_len=Range(a_low[1], a_opt[1], a_high[1]),
            video_len=Range(v_low[1], v_opt[1], v_high[1]),
        )
        stated = self.manifest.shapes
        if stated is not None and stated != profile:
            raise ManifestError(
                f"the manifest's shapes {stated.to_dict()} are not the engine's profile {profile.to_dict()}: "
                "model.plan.json does not belong to this engine"
            )
        return profile

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock, self._on_device():
            addresses: dict[str, int] = {}
            for name in INPUTS:
                tensor = self.tensors[name]
                value = feeds[name]
                shape = tuple(value.shape)
                self._check_profile(tensor, shape)
                if not self.api.set_input_shape(self.context, tensor, shape):
                    raise BatchError(f"TensorRT refused input {name} of shape {shape}")
                device, host = self.buffers.get(name, shape, tensor.dtype)
                host[...] = value
                self.cuda.memcpy_htod_async(device, host, self.stream)
                addresses[name] = int(device)
            staged = {}
            for tensor in self._io(inputs=False):
                shape = self.api.output_shape(self.context, tensor)
                device, host = self.buffers.get(tensor.name, shape, tensor.dtype)
                addresses[tensor.name] = int(device)
                staged[tensor.name] = (device, host)
            self.api.bind(self.context, addresses)
            if not self.api.execute(self.context, self.stream):
                raise BatchError("TensorRT failed to execute the batch")
            for device, host in staged.values():
                self.cuda.memcpy_dtoh_async(host, device, self.stream)
            self.stream.synchronize()
            # the host buffers are reused by the next batch: hand out copies
            return {name: host.astype(np.float32, copy=True) for name, (_, host) in staged.items()}

    def _check_profile(self, tensor: IoTensor, shape: tuple[int, ...]) -> None:
        if tensor.profile is None:
            return
        low, _, high = tensor.profile
        if len(shape) != len(low) or any(not lo <= n <= hi for n, lo, hi in zip(shape, low, high, strict=True)):
            raise RunnerError(f"input {tensor.name} of shape {shape} is outside the engine's profile {low}..{high}")

    def close(self) -> None:
        with self._lock:
            if self._closed:  # Session.close() and then leaving a `with` block both land here
                return
            self._closed = True
            with self._on_device():
                self.buffers.free()
                self.context = None
                self.engine = None
            self._cuda_context.detach()
