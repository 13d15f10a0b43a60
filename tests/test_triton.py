"""The Triton model repository: layout, platforms, tensor shapes and dynamic batching."""

from __future__ import annotations

from auxformer.export.triton import config_pbtxt, write_repository

from .export_support import LABELS, PROFILE, VIDEO_DIM, tiny_export


def test_config_lists_the_io_contract_without_the_batch_axis():
    text = config_pbtxt("auxformer_onnx", "onnx", tiny_export().manifest, PROFILE)
    assert 'platform: "onnxruntime_onnx"' in text
    assert "max_batch_size: 32" in text
    assert 'input [ { name: "audio", data_type: TYPE_FP32, dims: [ -1, 130 ] } ]' in text
    assert 'input [ { name: "audio_mask", data_type: TYPE_BOOL, dims: [ -1 ] } ]' in text
    assert f'input [ {{ name: "video", data_type: TYPE_FP32, dims: [ -1, {VIDEO_DIM} ] }} ]' in text
    for name in ("logits", "probs", "logits_av", "logits_audio", "logits_video"):
        assert f'output [ {{ name: "{name}", data_type: TYPE_FP32, dims: [ {len(LABELS)} ] }} ]' in text
    assert "preferred_batch_size: [ 4, 32 ]" in text
    assert "max_queue_delay_microseconds" in text


def test_repository_layout(tmp_path):
    exported = tiny_export()
    plan = tmp_path / "build" / "model.plan"
    plan.parent.mkdir()
    plan.write_bytes(b"engine")
    plan.with_name("model.plan.json").write_text("{}")
    files = write_repository(tmp_path / "repo", exported.manifest, PROFILE, exported.path, plan)
    rel = sorted(str(p.relative_to(tmp_path / "repo")) for p in files)
    assert rel == [
        "auxformer_onnx/1/model.onnx",
        "auxformer_onnx/config.pbtxt",
        "auxformer_trt/1/model.plan",
        "auxformer_trt/1/model.plan.json",
        "auxformer_trt/config.pbtxt",
    ]
    assert (tmp_path / "repo/auxformer_onnx/1/model.onnx").read_bytes() == exported.path.read_bytes()
    trt = (tmp_path / "repo/auxformer_trt/config.pbtxt").read_text()
    assert 'platform: "tensorrt_plan"' in trt and "KIND_GPU" in trt and 'name: "auxformer_trt"' in trt


def test_without_an_engine_only_onnx(tmp_path):
    exported = tiny_export()
    write_repository(tmp_path, exported.manifest, PROFILE, exported.path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auxformer_onnx"]
