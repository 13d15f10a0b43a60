"""TensorRT engine builds: `model.plan` + `model.plan.json` (manifest + how the engine was built).

Precision lives in the ONNX graph now. TensorRT 10 builds a *strongly typed* network from the ONNX it is
given (model.fp16.onnx, or the Q/DQ model.int8.onnx); TensorRT 11 is always strongly typed and has no
FP16/INT8 builder flags or calibrators any more. JetPack 5/6 devices still run TensorRT 8.5-10.x, where
TensorRT < 10 takes the fp32 ONNX plus the FP16 builder flag (and INT8 with a Q/DQ model, or with a
calibrator). `plan_build` decides that per version; `build_engine` carries it out through the
TensorRT Python API, imported lazily (a `tensorrt`-like module may be passed in instead, which is how
the recording fake in the tests exercises every branch without a GPU).
"""

from __future__ import annotations

import datetime
import hashlib
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from auxformer.common import atomic
from auxformer.common.optional import MissingDependency, require
from auxformer.runtime.manifest import Manifest
from auxformer.runtime.profile import Profile
from auxformer.runtime.tensorrt_runner import parse_version

MIN_VERSION = (8, 5)
STRONGLY_TYPED_FROM = 10  # NetworkDefinitionCreationFlag.STRONGLY_TYPED
ALWAYS_STRONGLY_TYPED_FROM = 11  # the flag is deprecated and ignored; FP16/INT8 flags and calibrators are gone
COMPATIBILITY_FROM = (8, 6)  # VERSION_COMPATIBLE, HardwareCompatibilityLevel
PRECISIONS = ("fp32", "fp16", "int8")


class EngineUnavailable(RuntimeError):
    """TensorRT or an NVIDIA GPU is missing here; the message is the one line to show."""


class EngineBuildError(RuntimeError):
    """TensorRT refused the model or the build failed."""


@dataclass(frozen=True)
class EngineOptions:
    precision: str = "fp16"
    workspace_gib: float = 4.0
    timing_cache: Path | None = None  # read if present, written back after the build
    version_compatible: bool = False  # runs on later TensorRT versions (8.6+; lean runtime inside)
    hardware_compatible: bool = False  # runs on every Ampere-or-newer GPU, not only the build GPU's kind
    optimization_level: int | None = None  # TensorRT's builder_optimization_level (0-5; default 3)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


@dataclass(frozen=True)
class OnnxModels:
    """The exported models a build can choose from."""

    fp32: Path
    fp16: Path | None = None
    int8: Path | None = None  # Q/DQ (explicit quantization), from auxformer.calibration


@dataclass(frozen=True)
class BuildPlan:
    """What one TensorRT version needs for one precision."""

    onnx: Path
    strongly_typed: bool  # tensor types come from the ONNX graph, not from builder flags
    network_flags: tuple[str, ...] = ()  # NetworkDefinitionCreationFlag names
    builder_flags: tuple[str, ...] = ()  # BuilderFlag names
    use_calibrator: bool = False


def plan_build(version: tuple[int, int], precision: str, models: OnnxModels, calibrator: Any = None) -> BuildPlan:
    if version < MIN_VERSION:
        raise EngineUnavailable(f"TensorRT {version[0]}.{version[1]} is older than 8.5, the oldest supported")
    if version[0] >= STRONGLY_TYPED_FROM:
        if calibrator is not None:
            raise EngineBuildError(
                f"TensorRT {version[0]} builds INT8 from the Q/DQ model; calibrators are for TensorRT < 10 only"
            )
        onnx = {"fp32": models.fp32, "fp16": models.fp16, "int8": models.int8}[precision]
        if onnx is None:
            raise EngineBuildError(
                f"TensorRT {version[0]} needs the {precision} ONNX model (precision is in the graph)"
            )
        flags = () if version[0] >= ALWAYS_STRONGLY_TYPED_FROM else ("STRONGLY_TYPED",)
        return BuildPlan(onnx, strongly_typed=True, network_flags=flags)
    # TensorRT 8.5-9.x: weakly typed network, precision by builder flags
    weak = {"strongly_typed": False, "network_flags": ("EXPLICIT_BATCH",)}
    if precision == "fp32":
        return BuildPlan(models.fp32, **weak)
    if precision == "fp16":
        return BuildPlan(models.fp32, **weak, builder_flags=("FP16",))
    if calibrator is not None:  # implicit quantization of the fp32 model
        return BuildPlan(models.fp32, **weak, builder_flags=("INT8", "FP16"), use_calibrator=True)
    if models.int8 is None:
        raise EngineBuildError("INT8 needs the Q/DQ model (--int8 --calib FEATURES) or a calibrator")
    return BuildPlan(models.int8, **weak, builder_flags=("INT8", "FP16"))


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str  # "8.7"


# Jetson modules: their integrated GPU's compute capability (no nvidia-smi query on JetPack 5)
JETSON_MODEL = Path("/proc/device-tree/model")
JETSON_CAPABILITY = {"Orin": "8.7", "Xavier": "7.2", "TX2": "6.2", "Nano": "5.3", "TX1": "5.3"}


def probe_gpu() -> Gpu | None:
    """The first NVIDIA GPU: from nvidia-smi (datacenter), pycuda, or a Jetson's device tree."""
    for probe in (_nvidia_smi, _pycuda, _jetson):
        gpu = probe()
        if gpu is not None:
            return gpu
    return None


def _nvidia_smi() -> Gpu | None:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    query = [smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    name, _, cc = out.splitlines()[0].rpartition(",") if out else ("", "", "")
    return Gpu(name.strip(), cc.strip()) if name else None


def _pycuda() -> Gpu | None:
    try:
        cuda = require("pycuda.driver")
        cuda.init()
        device = cuda.Device(0)
        return Gpu(device.name(), "{}.{}".format(*device.compute_capability()))
    except Exception:  # no pycuda, no driver, no device: all mean "not found this way"
        return None


def _jetson() -> Gpu | None:
    try:
        model = JETSON_MODEL.read_text().strip("\x00\n ")
    except OSError:
        return None
    if "NVIDIA Jetson" not in model:
        return None
    known = [cc for family, cc in JETSON_CAPABILITY.items() if family in model]
    return Gpu(model, known[0] if known else "unknown")


def import_tensorrt() -> ModuleType:
    try:
        return require("tensorrt")
    except MissingDependency as err:
        raise EngineUnavailable("TensorRT is not installed (pip install 'auxformer[gpu]'; JetPack has it)") from err


@dataclass
class EngineResult:
    plan: Path
    sidecar: Path
    manifest: Manifest
    build: BuildPlan
    seconds: float


def build_engine(
    models: OnnxModels,
    out_path: str | Path,
    manifest: Manifest,
    profile: Profile,
    options: EngineOptions,
    trt: ModuleType | None = None,
    gpu: Gpu | None = None,
    calibrator: Any = None,
) -> EngineResult:
    """Build `out_path` (model.plan) and its sidecar manifest. Raises EngineUnavailable when TensorRT
    or a GPU is missing, EngineBuildError when TensorRT rejects the model."""
    trt = trt or import_tensorrt()
    version = parse_version(trt.__version__)
    plan = plan_build(version, options.precision, models, calibrator)
    gpu = gpu or probe_gpu()
    if gpu is None:
        raise EngineUnavailable(f"TensorRT {trt.__version__} is installed but no NVIDIA GPU was found")
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    try:
        builder = trt.Builder(logger)
    except (RuntimeError, TypeError) as err:  # CUDA init failure surfaces here
        raise EngineUnavailable(f"TensorRT cannot start a builder on this machine: {err}") from err
    network = builder.create_network(_flag_bits(trt.NetworkDefinitionCreationFlag, plan.network_flags))
    _parse(trt, network, logger, plan.onnx)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gib * (1 << 30)))
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    opt_profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profile.input_shapes(manifest.video_dim).items():
        opt_profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(opt_profile)
    if plan.use_calibrator:
        config.int8_calibrator = calibrator
        config.set_calibration_profile(opt_profile)  # dynamic shapes: calibrate at the profile's opt
    _compatibility(trt, config, version, options)
    if options.optimization_level is not None:
        config.builder_optimization_level = options.optimization_level
    cache = config.create_timing_cache(_read(options.timing_cache))
    config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT could not build an engine from {plan.onnx.name} (see its log above)")
    out_path = Path(out_path)
    atomic.write_bytes(out_path, bytes(serialized))
    if options.timing_cache is not None:
        atomic.write_bytes(options.timing_cache, bytes(config.get_timing_cache().serialize()))
    seconds = time.perf_counter() - t0

    engine_manifest = replace(
        manifest,
        precision=options.precision,
        shapes=profile,
        engine=_engine_record(trt.__version__, gpu, plan, profile, options, seconds),
    )
    sidecar = Path(f"{out_path}.json")
    atomic.write_text(sidecar, engine_manifest.to_json() + "\n")
    return EngineResult(out_path, sidecar, engine_manifest, plan, seconds)


def _flag_bits(enum: Any, names: tuple[str, ...]) -> int:
    bits = 0
    for name in names:
        bits |= 1 << int(getattr(enum, name))
    return bits


def _parse(trt: ModuleType, network: Any, logger: Any, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT's ONNX parser rejected {onnx_path.name}: " + "; ".join(errors))


def _compatibility(trt: ModuleType, config: Any, version: tuple[int, int], options: EngineOptions) -> None:
    if not (options.version_compatible or options.hardware_compatible):
        return
    if version < COMPATIBILITY_FROM:
        raise EngineBuildError("version- and hardware-compatible engines need TensorRT >= 8.6")
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if options.hardware_compatible:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS


def _read(path: Path | None) -> bytes:
    return path.read_bytes() if path is not None and path.is_file() else b""


def _engine_record(
    version: str, gpu: Gpu, plan: BuildPlan, profile: Profile, options: EngineOptions, seconds: float
) -> dict[str, Any]:
    return {
        "tensorrt_version": version,
        "gpu": gpu.name,
        "compute_capability": gpu.compute_capability,
        "precision": options.precision,
        "profile": profile.to_dict(),
        "onnx": plan.onnx.name,
        "onnx_sha256": hashlib.sha256(plan.onnx.read_bytes()).hexdigest(),
        "strongly_typed": plan.strongly_typed,
        "builder_flags": list(plan.builder_flags),
        "calibrator": plan.use_calibrator,
        "version_compatible": options.version_compatible,
        "hardware_compatibility": "AMPERE_PLUS" if options.hardware_compatible else "NONE",
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
    }
