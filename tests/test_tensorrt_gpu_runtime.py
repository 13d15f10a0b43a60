"""The TensorRT runner on a real GPU: an engine built here from the tiny ONNX model predicts what
onnxruntime predicts. Skips with a reason without TensorRT, pycuda or a GPU."""

from __future__ import annotations

import pytest

from auxformer.runtime import Session
from auxformer.runtime.profile import Profile

from .export_support import tiny_export
from .runtime_support import SHAPES, VIDEO_DIM, ragged_clips, sidecar

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def trt():
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (the `gpu` extra)")
    cuda = pytest.importorskip("pycuda.driver", reason="pycuda is not installed (the `gpu` extra)")
    try:
        cuda.init()
        if cuda.Device.count() == 0:
            pytest.skip("no CUDA GPU")
    except cuda.Error as err:
        pytest.skip(f"no usable CUDA GPU ({err})")
    return trt


def build_plan(trt, tmp_path):
    """A plain fp32 engine (TF32 off, so it agrees with the CPU to float precision) with one profile."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(tiny_export().path.read_bytes()), [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in Profile.from_dict(SHAPES).input_shapes(VIDEO_DIM).items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    plan = tmp_path / "model.plan"
    plan.write_bytes(bytes(builder.build_serialized_network(network, config)))
    sidecar(tiny_export().path, plan, {"tensorrt": trt.__version__, "profile": SHAPES})
    return plan


def test_engine_predicts_what_onnxruntime_predicts(trt, tmp_path):
    engine = Session.load(build_plan(trt, tmp_path), device="cuda:0")
    reference = Session.load(tiny_export().path, device="cpu")
    clips = ragged_clips(20, seed=2)
    for a, b in zip(reference.predict(clips, batch_size=8), engine.predict(clips, batch_size=8), strict=True):
        assert (a.label, a.status, a.present) == (b.label, b.status, b.present)
        if a.probabilities:
            assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) < 1e-4
    engine.close()
