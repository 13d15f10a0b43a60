"""Our TensorRT builder logic against a recording FAKE of the TensorRT API (tests/fake_tensorrt.py):
version branches (8.6 / 10.x / 11.x), the optimization profile, flags, timing cache, compatibility
options and the sidecar manifest. Real engine builds are in test_tensorrt_gpu.py (GPU only)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from auxformer.export import tensorrt_build as tb
from auxformer.export.tensorrt_build import (
    EngineBuildError,
    EngineOptions,
    EngineUnavailable,
    Gpu,
    OnnxModels,
    build_engine,
    plan_build,
)
from auxformer.runtime.manifest import FeatureSpec, Manifest, ModelRecord, PredictionSpec

from .export_support import LABELS, PROFILE, VIDEO_DIM
from .fake_tensorrt import make_fake_tensorrt

GPU = Gpu("FAKE GPU (test)", "8.7")


@pytest.fixture
def models(tmp_path: Path) -> OnnxModels:
    paths = {}
    for precision, name in (("fp32", "model.onnx"), ("fp16", "model.fp16.onnx"), ("int8", "model.int8.onnx")):
        paths[precision] = tmp_path / name
        paths[precision].write_bytes(f"onnx {precision}".encode())
    return OnnxModels(**paths)


@pytest.fixture
def manifest() -> Manifest:
    return Manifest(
        labels=LABELS,
        features=FeatureSpec(audio_dim=130, video_dim=VIDEO_DIM),
        model=ModelRecord("auxformer"),
        heads=["av", "audio", "video"],
        prediction=PredictionSpec("mean_logits", {"av": ("audio", "video"), "audio": ("audio",), "video": ("video",)}),
    )


def build(trt, models, manifest, tmp_path, calibrator=None, **options):
    return build_engine(
        models,
        tmp_path / "model.plan",
        manifest,
        PROFILE,
        EngineOptions(**options),
        trt=trt,
        gpu=GPU,
        calibrator=calibrator,
    )


@pytest.mark.parametrize(
    ("version", "precision", "onnx", "network_flags", "builder_flags"),
    [
        ((8, 6), "fp32", "fp32", ("EXPLICIT_BATCH",), ()),
        ((8, 6), "fp16", "fp32", ("EXPLICIT_BATCH",), ("FP16",)),
        ((9, 3), "int8", "int8", ("EXPLICIT_BATCH",), ("INT8", "FP16")),
        ((10, 3), "fp16", "fp16", ("STRONGLY_TYPED",), ()),
        ((10, 8), "int8", "int8", ("STRONGLY_TYPED",), ()),
        ((11, 1), "fp16", "fp16", (), ()),
        ((11, 1), "fp32", "fp32", (), ()),
    ],
)
def test_plan_per_version(models, version, precision, onnx, network_flags, builder_flags):
    plan = plan_build(version, precision, models)
    assert plan.onnx == getattr(models, onnx)
    assert plan.network_flags == network_flags
    assert plan.builder_flags == builder_flags
    assert plan.strongly_typed == (version[0] >= 10)


def test_plan_refusals(models):
    with pytest.raises(EngineUnavailable, match=r"older than 8\.5"):
        plan_build((8, 4), "fp16", models)
    with pytest.raises(EngineBuildError, match="calibrators are for TensorRT < 10"):
        plan_build((10, 3), "int8", models, calibrator=object())
    with pytest.raises(EngineBuildError, match="needs the fp16 ONNX"):
        plan_build((10, 3), "fp16", OnnxModels(models.fp32))
    with pytest.raises(EngineBuildError, match="Q/DQ model"):
        plan_build((8, 6), "int8", OnnxModels(models.fp32))


def test_tensorrt_10_fp16_is_strongly_typed_from_the_fp16_onnx(models, manifest, tmp_path):
    trt = make_fake_tensorrt("10.3.0")
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"old")
    result = build(trt, models, manifest, tmp_path, precision="fp16", workspace_gib=2, timing_cache=cache)
    rec = trt.record
    assert rec.args("create_network") == [(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED),)]
    assert rec.args("parser.parse_from_file") == [(str(models.fp16),)]
    assert rec.args("config.set_flag") == []  # precision comes from the graph, not from flags
    assert rec.args("config.set_memory_pool_limit") == [("WORKSPACE", 2 << 30)]
    shapes = {args[0]: args[1:] for args in rec.args("profile.set_shape")}
    assert shapes == {
        "audio": ((1, 1, 130), (4, 64, 130), (32, 320, 130)),
        "audio_mask": ((1, 1), (4, 64), (32, 320)),
        "video": ((1, 1, VIDEO_DIM), (4, 20, VIDEO_DIM), (32, 208, VIDEO_DIM)),
        "video_mask": ((1, 1), (4, 20), (32, 208)),
    }
    assert rec.names().index("config.add_optimization_profile") < rec.names().index("build_serialized_network")
    # the timing cache is read, handed to the build, and written back with the new timings
    assert rec.args("config.create_timing_cache") == [(b"old",)]
    assert rec.args("config.set_timing_cache") == [(False,)]
    assert cache.read_bytes() == b"old+timings"
    assert result.plan.read_bytes() == b"FAKE-PLAN"


def test_sidecar_has_the_manifest_and_the_build(models, manifest, tmp_path):
    result = build(make_fake_tensorrt("10.3.0"), models, manifest, tmp_path, precision="fp16")
    assert result.sidecar == tmp_path / "model.plan.json"
    sidecar = Manifest.read_sidecar(result.plan)
    assert sidecar.labels == LABELS and sidecar.heads == manifest.heads
    assert sidecar.precision == "fp16"
    assert sidecar.shapes == PROFILE
    engine = sidecar.engine
    assert engine["tensorrt_version"] == "10.3.0"
    assert (engine["gpu"], engine["compute_capability"]) == ("FAKE GPU (test)", "8.7")
    assert engine["profile"] == PROFILE.to_dict()
    assert engine["onnx"] == "model.fp16.onnx" and len(engine["onnx_sha256"]) == 64
    assert engine["strongly_typed"] is True and engine["builder_flags"] == []
    json.loads(result.sidecar.read_text())  # plain JSON for non-Python readers


def test_tensorrt_11_never_touches_removed_flags(models, manifest, tmp_path):
    trt = make_fake_tensorrt("11.1.0")
    assert not hasattr(trt.BuilderFlag, "FP16")  # the fake is faithful to the removal
    for precision in ("fp16", "int8"):
        build(trt, models, manifest, tmp_path, precision=precision)
    assert trt.record.args("create_network") == [(0,), (0,)]
    assert trt.record.args("parser.parse_from_file") == [(str(models.fp16),), (str(models.int8),)]
    assert trt.record.args("config.set_flag") == []
    assert "config.int8_calibrator" not in trt.record.names()


def test_tensorrt_8_6_uses_fp32_onnx_and_builder_flags(models, manifest, tmp_path):
    trt = make_fake_tensorrt("8.6.1")
    result = build(trt, models, manifest, tmp_path, precision="fp16")
    assert trt.record.args("create_network") == [(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH),)]
    assert trt.record.args("parser.parse_from_file") == [(str(models.fp32),)]
    assert trt.record.args("config.set_flag") == [("FP16",)]
    assert result.manifest.engine["strongly_typed"] is False


def test_tensorrt_8_6_int8_with_a_calibrator(models, manifest, tmp_path):
    trt = make_fake_tensorrt("8.6.1")
    calibrator = object()
    result = build(trt, models, manifest, tmp_path, calibrator=calibrator, precision="int8")
    rec = trt.record
    assert rec.args("parser.parse_from_file") == [(str(models.fp32),)]
    assert rec.args("config.set_flag") == [("INT8",), ("FP16",)]
    assert rec.args("config.int8_calibrator") == [(calibrator,)]
    assert len(rec.args("config.set_calibration_profile")) == 1
    assert result.manifest.engine["calibrator"] is True


def test_compatibility_options(models, manifest, tmp_path):
    trt = make_fake_tensorrt("10.3.0")
    result = build(
        trt, models, manifest, tmp_path, version_compatible=True, hardware_compatible=True, optimization_level=5
    )
    assert ("VERSION_COMPATIBLE",) in trt.record.args("config.set_flag")
    assert trt.record.args("config.hardware_compatibility_level") == [("AMPERE_PLUS",)]
    assert trt.record.args("config.builder_optimization_level") == [(5,)]
    assert result.manifest.engine["hardware_compatibility"] == "AMPERE_PLUS"
    with pytest.raises(EngineBuildError, match=r">= 8\.6"):
        build(make_fake_tensorrt("8.5.3"), models, manifest, tmp_path, version_compatible=True)


def test_parser_and_build_failures_leave_no_plan(models, manifest, tmp_path):
    with pytest.raises(EngineBuildError, match=r"rejected model.fp16.onnx: In node 7 \(Where\)"):
        build(make_fake_tensorrt("10.3.0", parse_ok=False), models, manifest, tmp_path)
    with pytest.raises(EngineBuildError, match="could not build"):
        build(make_fake_tensorrt("10.3.0", build_ok=False), models, manifest, tmp_path)
    assert not (tmp_path / "model.plan").exists()
    assert not (tmp_path / "model.plan.json").exists()


def test_missing_tensorrt_or_gpu_is_engine_unavailable(models, manifest, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # an import of it fails, as on this machine
    with pytest.raises(EngineUnavailable, match=r"auxformer\[gpu\]"):
        build_engine(models, tmp_path / "model.plan", manifest, PROFILE, EngineOptions())
    monkeypatch.setattr(tb, "probe_gpu", lambda: None)
    with pytest.raises(EngineUnavailable, match="no NVIDIA GPU"):
        build_engine(
            models, tmp_path / "model.plan", manifest, PROFILE, EngineOptions(), trt=make_fake_tensorrt("10.3.0")
        )


def test_gpu_probe_reads_a_jetson_device_tree(tmp_path, monkeypatch):
    monkeypatch.setattr(tb, "_nvidia_smi", lambda: None)
    monkeypatch.setattr(tb, "_pycuda", lambda: None)
    model = tmp_path / "model"
    monkeypatch.setattr(tb, "JETSON_MODEL", model)
    assert tb.probe_gpu() is None  # no device tree: not a Jetson
    model.write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    assert tb.probe_gpu() == Gpu("NVIDIA Jetson AGX Orin Developer Kit", "8.7")
    model.write_bytes(b"NVIDIA Jetson Next\x00")
    assert tb.probe_gpu() == Gpu("NVIDIA Jetson Next", "unknown")  # still a GPU to build on
    model.write_bytes(b"Raspberry Pi 4 Model B\x00")
    assert tb.probe_gpu() is None
