"""model.fp16.onnx: fp32 I/O, fp16 matrix multiplies, fp32 LayerNorm / Softmax / masks / positions,
finite mask fill, no lossy Cast round trips, and outputs close to PyTorch (also with a modality missing)."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from auxformer.export.fp16 import check_no_infinite_constants, collapse_cast_round_trips, convert_fp16
from auxformer.export.onnx_export import read_manifest
from auxformer.runtime.onnxruntime_runner import inference_session

from .export_support import feature_batch, scratch_dir, tiny_export, torch_outputs

FP32, FP16 = TensorProto.FLOAT, TensorProto.FLOAT16


@functools.cache
def converted():
    return convert_fp16(tiny_export().path, scratch_dir() / "model.fp16.onnx")


@functools.cache
def typed_graph():
    model = onnx.shape_inference.infer_shapes(onnx.load(str(converted().path)), strict_mode=True)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in (*model.graph.value_info, *model.graph.input)}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return model, types


def input_types(op_type: str) -> set[int]:
    model, types = typed_graph()
    return {types[n.input[0]] for n in model.graph.node if n.op_type == op_type}


def test_io_stays_fp32_and_bool():
    session = inference_session(converted().path, "cpu")
    assert [i.type for i in session.get_inputs()] == ["tensor(float)", "tensor(bool)"] * 2
    assert {o.type for o in session.get_outputs()} == {"tensor(float)"}
    assert session.get_inputs()[0].shape == ["batch", "audio_len", 130]


def test_precision_per_op():
    assert input_types("MatMul") == {FP16}  # the heavy work is fp16
    for op in ("LayerNormalization", "Softmax", "Sin", "Cos"):
        assert input_types(op) == {FP32}, op
    model, types = typed_graph()
    where_values = {types[n.input[1]] for n in model.graph.node if n.op_type == "Where"}
    assert where_values == {FP32}  # mask fill and feature normalisation in fp32


def test_no_lossy_round_trips_and_finite_constants():
    model, types = typed_graph()
    producer = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        inner = producer.get(node.input[0]) if node.op_type == "Cast" else None
        if inner is not None and inner.op_type == "Cast":
            assert not (node.attribute[0].i == FP32 and types.get(inner.input[0]) == FP32), node.name
    check_no_infinite_constants(model)


def test_manifest_says_fp16():
    fp32, fp16 = read_manifest(tiny_export().path), read_manifest(converted().path)
    assert fp16.precision == "fp16"
    assert {**fp16.__dict__, "precision": "fp32"} == fp32.__dict__


@pytest.mark.parametrize("missing", [None, "audio", "video"])
@pytest.mark.parametrize("shape", [(1, 37, 11), (5, 301, 97), (32, 64, 200)], ids=lambda s: "x".join(map(str, s)))
def test_close_to_pytorch(shape, missing):
    feeds = feature_batch(*shape, seed=7, missing=missing)
    reference = torch_outputs(tiny_export(), feeds)
    got = inference_session(converted().path, "cpu").run(None, feeds)
    for ref, out in zip(reference, got, strict=True):
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out, ref, atol=0.05, rtol=0.05)
    assert (got[0].argmax(1) == reference[0].argmax(1)).mean() >= 0.9


def round_trip_model(output_is_graph_output: bool) -> onnx.ModelProto:
    """x (fp32) -> Cast16 -> Cast32 -> Relu -> y, the converter's pattern between two fp32 nodes."""
    last = "y" if output_is_graph_output else "back"
    nodes = [
        helper.make_node("Cast", ["x"], ["half"], to=FP16, name="down"),
        helper.make_node("Cast", ["half"], [last], to=FP32, name="up"),
    ]
    if not output_is_graph_output:
        nodes.append(helper.make_node("Relu", ["back"], ["y"], name="relu"))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", FP32, [2])],
        [helper.make_tensor_value_info("y", FP32, [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_collapse_cast_round_trips():
    model = round_trip_model(output_is_graph_output=False)
    assert collapse_cast_round_trips(model) == 1
    assert [(n.op_type, list(n.input)) for n in model.graph.node] == [("Relu", ["x"])]
    model = round_trip_model(output_is_graph_output=True)
    assert collapse_cast_round_trips(model) == 1  # the output keeps its name, read from x directly
    assert [(n.name, list(n.input)) for n in model.graph.node] == [("up", ["x"])]


def test_infinite_constants_are_refused():
    model = round_trip_model(False)
    model.graph.initializer.append(helper.make_tensor("fill", FP16, [1], [float("-inf")]))
    with pytest.raises(ValueError, match="'fill' has infinite values"):
        check_no_infinite_constants(model)
