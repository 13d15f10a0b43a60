"""INT8: the stratified calibration set and the Q/DQ model it calibrates."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from auxformer.calibration.dataset import CalibrationSet, stratified_sample, write_calibration_set
from auxformer.runtime.batching import pad_batch
from auxformer.runtime.manifest import FeatureSpec, Manifest, ModelRecord, PredictionSpec

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def test_sample_is_stratified_by_label_and_length(small_demo):
    chosen = stratified_sample(small_demo, n=36, seed=0)
    assert len(chosen) == 36 and len({e.clip_id for e in chosen}) == 36
    per_label = collections.Counter(e.label for e in chosen)
    assert set(per_label) == set(small_demo.labels) and max(per_label.values()) - min(per_label.values()) <= 2
    lengths = np.array([int(e.extra["audio_frames"]) for e in small_demo.entries])
    picked = np.array([int(e.extra["audio_frames"]) for e in chosen])
    assert picked.min() <= np.quantile(lengths, 0.25) and picked.max() >= np.quantile(lengths, 0.75)
    assert [e.clip_id for e in stratified_sample(small_demo, n=36, seed=0)] == [e.clip_id for e in chosen]
    assert len(stratified_sample(small_demo, n=10_000)) == len(small_demo)


def test_calibration_set_roundtrip(small_demo, tmp_path):
    written = write_calibration_set(small_demo, tmp_path, n=40, batch_size=16)
    calib = CalibrationSet.open(tmp_path)
    assert len(calib) == 3 and sum(len(ids) for ids in calib.clip_ids) == 40
    batches = list(calib)
    assert [b["audio"].shape[0] for b in batches] == [16, 16, 8]
    assert batches[0]["audio_mask"].dtype == bool and written.batches == calib.batches
    # sorted by length: later batches are not shorter
    assert batches[0]["audio"].shape[1] <= batches[-1]["audio"].shape[1]


def test_int8_model_is_qdq_and_close_to_fp32(small_demo, tmp_path):
    import torch

    from auxformer.calibration.int8 import quantize
    from auxformer.export.onnx_export import export_onnx
    from auxformer.train.config import ModelConfig
    from auxformer.train.model import build_model

    from .conftest import TINY

    torch.manual_seed(0)
    model = build_model("auxformer", ModelConfig(num_classes=6, video_dim=16, **TINY)).eval()
    manifest = Manifest(
        labels=small_demo.labels,
        features=FeatureSpec(audio_dim=130, video_dim=16),
        model=ModelRecord("auxformer"),
        heads=list(model.head_modalities),
        prediction=PredictionSpec(model.cfg.prediction, model.head_modalities),
    )
    export_onnx(model, manifest, tmp_path / "model.onnx")
    calib = write_calibration_set(small_demo, tmp_path / "calib", n=48, batch_size=16)
    info = quantize(tmp_path / "model.onnx", calib, tmp_path / "model.int8.onnx")
    assert info.quantized_nodes > 0 and info.clips == 48

    proto = onnx.load(str(tmp_path / "model.int8.onnx"))
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    # the mask path and the normalisations stay in float
    for node in proto.graph.node:
        if node.op_type in ("Softmax", "LayerNormalization", "Where"):
            assert not any("QuantizeLinear" in i or "_quantized" in i for i in node.input), node.name
    meta = Manifest.from_metadata({p.key: p.value for p in proto.metadata_props}, "int8")
    assert meta.precision == "int8" and meta.training.int8["method"] == "minmax"

    feeds = pad_batch([small_demo.load(e) for e in small_demo.entries[:24]])
    fp32 = ort.InferenceSession(str(tmp_path / "model.onnx")).run(["logits"], feeds)[0]
    int8 = ort.InferenceSession(str(tmp_path / "model.int8.onnx")).run(["logits"], feeds)[0]
    assert np.isfinite(int8).all()
    assert (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.9


def test_apportion_is_proportional_and_capped():
    from auxformer.calibration.dataset import apportion

    assert apportion({"a": 50, "b": 30, "c": 20}, 10) == {"a": 5, "b": 3, "c": 2}
    assert sum(apportion({"a": 7, "b": 1, "c": 1}, 5).values()) == 5
    assert apportion({"a": 1, "b": 100}, 50)["a"] <= 1
