"""Real TensorRT engine builds (GPU machines only; skipped with a reason elsewhere): the fp16 engine of the
tiny model builds, carries the I/O of docs/architecture.md, and, where torch has CUDA, agrees with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from auxformer.export.fp16 import convert_fp16
from auxformer.export.tensorrt_build import EngineOptions, OnnxModels, build_engine, probe_gpu
from auxformer.runtime.manifest import INPUTS, Manifest

from .export_support import PROFILE, feature_batch, tiny_export, torch_outputs

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def trt():
    module = pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install 'auxformer[gpu]')")
    if probe_gpu() is None:
        pytest.skip("no NVIDIA GPU found (nvidia-smi / pycuda)")
    return module


@pytest.fixture(scope="module")
def engine_build(trt, tmp_path_factory):
    out = tmp_path_factory.mktemp("engine")
    exported = tiny_export()
    fp16 = convert_fp16(exported.path, out / "model.fp16.onnx").path
    options = EngineOptions(precision="fp16", workspace_gib=1, timing_cache=out / "timing.cache")
    return build_engine(OnnxModels(exported.path, fp16), out / "model.plan", exported.manifest, PROFILE, options)


def test_engine_and_sidecar(trt, engine_build):
    sidecar = Manifest.read_sidecar(engine_build.plan)
    assert sidecar.engine["tensorrt_version"] == trt.__version__
    assert sidecar.engine["strongly_typed"] == (int(trt.__version__.split(".")[0]) >= 10)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_build.plan.read_bytes())
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    assert names == [*INPUTS, *sidecar.output_names]
    assert engine.get_tensor_dtype("audio_mask") == trt.bool
    assert engine.get_tensor_dtype("logits") == trt.float32


def test_engine_matches_pytorch(trt, engine_build):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this torch has no CUDA to hand buffers to TensorRT")
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_build.plan.read_bytes())
    context = engine.create_execution_context()
    manifest = Manifest.read_sidecar(engine_build.plan)
    for missing in (None, "audio", "video"):
        feeds = feature_batch(5, 101, 47, seed=3, missing=missing)
        buffers = {k: torch.from_numpy(v).cuda() for k, v in feeds.items()}
        for name, tensor in buffers.items():
            context.set_input_shape(name, tuple(tensor.shape))
            context.set_tensor_address(name, tensor.data_ptr())
        for name in manifest.output_names:
            buffers[name] = torch.empty(tuple(context.get_tensor_shape(name)), device="cuda")
            context.set_tensor_address(name, buffers[name].data_ptr())
        stream = torch.cuda.current_stream()
        assert context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        reference = torch_outputs(tiny_export(), feeds)
        for name, ref in zip(manifest.output_names, reference, strict=True):
            got = buffers[name].cpu().numpy()
            assert np.isfinite(got).all()
            np.testing.assert_allclose(got, ref, atol=0.05, rtol=0.05)
