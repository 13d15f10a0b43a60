"""A FAKE of the TensorRT Python API, recording every call: it builds nothing and needs no GPU.

It has the shape of the real module at one version (which enums and flags exist differs between
TensorRT 8.6, 10.x and 11.x), so tests of our builder logic can check what we would ask TensorRT to do.
It is not TensorRT: engines are placeholder bytes and the "parser" only reads the ONNX file's name.
"""

from __future__ import annotations

import enum
import types
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Recorder:
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def __call__(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def args(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]


def make_fake_tensorrt(version: str, parse_ok: bool = True, build_ok: bool = True) -> types.ModuleType:
    """A module object standing in for `tensorrt` at `version` ("8.6.1", "10.3.0", "11.1.0")."""
    major, minor = (int(x) for x in version.split(".")[:2])
    record = Recorder()
    trt = types.ModuleType("fake_tensorrt")
    trt.__version__ = version
    trt.record = record

    network_flags = ["EXPLICIT_BATCH"] if major < 11 else []
    if major >= 10:
        network_flags.append("STRONGLY_TYPED")
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", network_flags, start=0)
    builder_flags = ["DEBUG", "REFIT"]
    if major < 11:  # removed in TensorRT 11: networks are strongly typed
        builder_flags += ["FP16", "INT8"]
    if (major, minor) >= (8, 6):
        builder_flags += ["VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"]
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", builder_flags, start=0)
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", ["WORKSPACE"], start=0)
    if (major, minor) >= (8, 6):
        trt.HardwareCompatibilityLevel = enum.IntEnum("HardwareCompatibilityLevel", ["NONE", "AMPERE_PLUS"], start=0)

    class Logger:
        WARNING = 2

        def __init__(self, severity: int):
            record("Logger", severity)

    class TimingCache:
        def __init__(self, blob: bytes):
            self.blob = blob

        def serialize(self) -> bytes:
            return self.blob + b"+timings"

    class OptimizationProfile:
        def set_shape(self, name: str, low: tuple, opt: tuple, high: tuple) -> None:
            record("profile.set_shape", name, low, opt, high)

    class Config:
        def __init__(self) -> None:
            self.cache: TimingCache | None = None

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            record("config.set_memory_pool_limit", pool.name, size)

        def set_flag(self, flag: Any) -> None:
            record("config.set_flag", flag.name)

        def add_optimization_profile(self, profile: OptimizationProfile) -> int:
            record("config.add_optimization_profile", profile)
            return 0

        def set_calibration_profile(self, profile: OptimizationProfile) -> None:
            record("config.set_calibration_profile", profile)

        def create_timing_cache(self, blob: bytes) -> TimingCache:
            record("config.create_timing_cache", blob)
            return TimingCache(blob)

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            record("config.set_timing_cache", ignore_mismatch)
            self.cache = cache
            return True

        def get_timing_cache(self) -> TimingCache | None:
            return self.cache

        def __setattr__(self, name: str, value: Any) -> None:
            if name == "int8_calibrator" and major >= 11:
                raise AttributeError("TensorRT 11 has no INT8 calibrators")
            if name != "cache":
                record(f"config.{name}", getattr(value, "name", value))
            object.__setattr__(self, name, value)

    class Network:
        def __init__(self, flags: int):
            self.flags = flags

    class Builder:
        def __init__(self, logger: Logger):
            record("Builder")

        def create_network(self, flags: int = 0) -> Network:
            record("create_network", flags)
            return Network(flags)

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> OptimizationProfile:
            return OptimizationProfile()

        def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
            record("build_serialized_network")
            return b"FAKE-PLAN" if build_ok else None

    class OnnxParser:
        def __init__(self, network: Network, logger: Logger):
            self.errors: list[str] = []

        def parse_from_file(self, path: str) -> bool:
            record("parser.parse_from_file", path)
            if not parse_ok:
                self.errors = ["In node 7 (Where): unsupported data type"]
            return parse_ok

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, i: int) -> str:
            return self.errors[i]

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    return trt
