"""ONNX export: dynamic axes, the I/O contract, the embedded manifest, and onnxruntime == PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from auxformer.export.onnx_export import (
    ExportError,
    check_dynamic_axes,
    check_ops,
    example_inputs,
    export_onnx,
    read_manifest,
)
from auxformer.runtime.manifest import METADATA_KEY, Manifest
from auxformer.runtime.onnxruntime_runner import inference_session

from .export_support import Exported, feature_batch, tiny_export, tiny_manifest, tiny_model, torch_outputs

# (B, Ta, Tv): none equal to the export example (3, 29, 13); B = 1 and Tv < Ta and Tv > Ta
SHAPES = [(1, 37, 11), (5, 301, 97), (32, 64, 200), (2, 1, 1)]


def test_io_contract_and_symbolic_axes():
    session = inference_session(tiny_export().path, "cpu")
    inputs = {i.name: (i.type, i.shape) for i in session.get_inputs()}
    assert inputs == {
        "audio": ("tensor(float)", ["batch", "audio_len", 130]),
        "audio_mask": ("tensor(bool)", ["batch", "audio_len"]),
        "video": ("tensor(float)", ["batch", "video_len", 16]),
        "video_mask": ("tensor(bool)", ["batch", "video_len"]),
    }
    outputs = [(o.name, o.shape) for o in session.get_outputs()]
    assert outputs == [(name, ["batch", 4]) for name in tiny_export().manifest.output_names]
    assert [o[0] for o in outputs] == ["logits", "probs", "logits_av", "logits_audio", "logits_video"]


def test_manifest_is_embedded_and_readable_through_onnxruntime():
    exported = tiny_export()
    meta = inference_session(exported.path, "cpu").get_modelmeta().custom_metadata_map
    manifest = Manifest.from_json(meta[METADATA_KEY])
    assert manifest == exported.manifest == read_manifest(exported.path)


def test_graph_is_small_and_free_of_data_dependent_ops():
    model = onnx.load(str(tiny_export().path))
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"NonZero", "ScatterND", "Loop", "If"}
    assert "LayerNormalization" in ops  # opset >= 17: one node, not a decomposition
    # one layer per encoder: a few hundred nodes; a masking trick or a decomposed op would blow this up
    assert len(model.graph.node) < 400
    assert not any(p.key == "pkg.torch.onnx.stack_trace" for n in model.graph.node for p in n.metadata_props)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("missing", [None, "audio", "video"])
def test_onnxruntime_matches_pytorch(shape, missing):
    exported = tiny_export()
    feeds = feature_batch(*shape, seed=sum(shape), missing=missing)
    reference = torch_outputs(exported, feeds)
    got = inference_session(exported.path, "cpu").run(None, feeds)
    assert len(got) == len(reference) == 5
    for ref, out in zip(reference, got, strict=True):
        assert out.shape == ref.shape
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)


def test_a_fixed_axis_is_reported():
    model = onnx.load(str(tiny_export().path))
    check_dynamic_axes(model)  # the real export passes
    dim = model.graph.input[2].type.tensor_type.shape.dim[1]  # video: video_len
    dim.dim_value = 13
    with pytest.raises(ExportError, match=r"video axis 1 \(video_len\) came out as 13"):
        check_dynamic_axes(model)


def test_forbidden_ops_are_refused():
    model = onnx.load(str(tiny_export().path))
    model.graph.node.append(onnx.helper.make_node("NonZero", ["audio_mask"], ["nz"]))
    with pytest.raises(ExportError, match="NonZero"):
        check_ops(model)


def test_bad_examples_and_opsets_are_refused(tmp_path):
    with pytest.raises(ValueError, match=">= 2"):
        example_inputs(130, 16, (1, 29, 13))
    exported = tiny_export()
    with pytest.raises(ExportError, match="opset 16"):
        export_onnx(exported.model, exported.manifest, tmp_path / "m.onnx", opset=16)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    ("name", "options", "heads"),
    [
        ("audio_only", {}, ["main", "audio"]),  # the video inputs exist but feed nothing
        ("mult", {}, ["av"]),
        ("auxformer", {"pooling": "mean", "prediction": "mean_probs", "shared_aux_mlp": True, "aux_passes": 3}, None),
    ],
    ids=["audio_only", "mult", "authors-options"],
)
def test_variants_export_with_the_same_contract(tmp_path, name, options, heads):
    model = tiny_model(name, **options)
    manifest = tiny_manifest(model)
    exported = Exported(model, manifest, export_onnx(model, manifest, tmp_path / "m.onnx").path, 0)
    session = inference_session(exported.path, "cpu")
    assert [i.name for i in session.get_inputs()] == ["audio", "audio_mask", "video", "video_mask"]
    expected_heads = heads or manifest.heads
    assert [o.name for o in session.get_outputs()] == ["logits", "probs", *(f"logits_{h}" for h in expected_heads)]
    for missing in (None, "audio", "video"):
        feeds = feature_batch(5, 61, 23, seed=1, missing=missing)
        for ref, out in zip(torch_outputs(exported, feeds), session.run(None, feeds), strict=True):
            np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)
