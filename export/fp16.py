"""`model.onnx` -> `model.fp16.onnx`: mixed precision that lives in the graph (what a strongly typed
TensorRT network builds from), with fp32 inputs and outputs.

The matrix multiplies and the element-wise work between them run in fp16. These stay in fp32:
- LayerNormalization and Softmax, and the `Where` that masks attention scores: their reductions and
  exponentials lose the most in fp16, and the mask fill (the dtype's lowest finite value) must not
  become -inf;
- everything that is not computed from the features (positional encodings from `Range`, mask
  arithmetic, head vote weights): a position of 300 has a resolution of 0.25 in fp16, which ruins the
  sinusoids, and these nodes cost nothing;
- the feature path before its first matrix multiply (in-graph z-normalisation, scaling, positions):
  raw features can have a mean far larger than their spread.
onnxruntime's converter inserts a Cast at every precision boundary, including fp32 -> fp16 -> fp32 round
trips between two fp32 nodes; those are collapsed afterwards, since they only throw precision away.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.common import atomic
from auxformer.common.optional import require

from .onnx_export import read_manifest

FP32_OPS = ("LayerNormalization", "Softmax", "Where")
MATMUL_OPS = frozenset({"MatMul", "Gemm"})
SHAPE_OPS = frozenset({"Shape", "Size"})  # their outputs carry no feature values


@dataclass
class Fp16Conversion:
    path: Path
    fp32_nodes: int  # nodes kept in fp32 (block list), before Cast insertion
    casts: int  # Cast nodes in the result
    node_count: int


def fp32_node_names(graph: Any) -> set[str]:
    """Names of the nodes to keep in fp32 (see the module docstring for why)."""
    nodes = list(graph.node)
    float_inputs = {vi.name for vi in graph.input if vi.type.tensor_type.elem_type == 1}  # 1: FLOAT

    data = set(float_inputs)  # tensors whose values derive from the features
    multiplied = set()  # ... through at least one matrix multiply
    # ONNX graphs are topologically sorted, so one forward pass settles both sets
    keep = set()
    for node in nodes:
        from_features = node.op_type not in SHAPE_OPS and any(i in data for i in node.input)
        after_matmul = node.op_type in MATMUL_OPS or any(i in multiplied for i in node.input)
        if from_features:
            data.update(node.output)
        if after_matmul:
            multiplied.update(node.output)
        if node.op_type in FP32_OPS or not from_features or not after_matmul:
            keep.add(node.name)
    return keep


def convert_fp16(src: str | Path, dst: str | Path) -> Fp16Conversion:
    """Write the mixed-precision model to `dst` (atomically) with its manifest marked `fp16`."""
    onnx = require("onnx")
    float16 = require("onnxruntime.transformers.float16")
    model = onnx.load_model(str(src))
    _name_unnamed_nodes(model.graph)
    keep = fp32_node_names(model.graph)
    converted = float16.convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=[*float16.DEFAULT_OP_BLOCK_LIST, *FP32_OPS],
        node_block_list=sorted(keep),
    )
    _sort_topologically(converted.graph)
    # The converter retypes every float value_info to fp16, also those of initializers it kept in
    # fp32; value_info is optional, so drop it and let shape inference derive consistent types.
    del converted.graph.value_info[:]
    collapse_cast_round_trips(converted)
    check_no_infinite_constants(converted)
    manifest = read_manifest(src)
    replace(manifest, precision="fp16").embed(converted)
    onnx.checker.check_model(converted, full_check=True)
    dst = Path(dst)
    with atomic.atomic_path(dst) as tmp:
        onnx.save_model(converted, str(tmp))
    return Fp16Conversion(
        path=dst,
        fp32_nodes=len(keep),
        casts=sum(n.op_type == "Cast" for n in converted.graph.node),
        node_count=len(converted.graph.node),
    )


def _name_unnamed_nodes(graph: Any) -> None:
    # the converter's node block list works by name
    for i, node in enumerate(graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"


def collapse_cast_round_trips(model: Any) -> int:
    """Cast(to=fp32) of Cast(to=fp16) of an fp32 tensor is that tensor, minus precision: read the
    tensor directly. Returns how many round trips were removed."""
    onnx = require("onnx")
    graph = model.graph
    fp32, fp16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    types = _elem_types(model)
    producer = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}
    replace: dict[str, str] = {}
    trips = 0
    for node in graph.node:
        inner = producer.get(node.input[0]) if _is_cast_to(node, fp32) else None
        if inner is None or not _is_cast_to(inner, fp16) or types.get(inner.input[0]) != fp32:
            continue
        trips += 1
        if node.output[0] in outputs:  # a graph output keeps its name: cast the fp32 source instead
            node.input[0] = inner.input[0]
        else:
            replace[node.output[0]] = inner.input[0]
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in replace:
                node.input[i] = replace[name]
    _remove_dead_nodes(graph)
    return trips


def _sort_topologically(graph: Any) -> None:
    """The converter appends its Casts at the end; ONNX wants producers before consumers."""
    available = {vi.name for vi in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        waiting = []
        for node in pending:
            if all(i in available for i in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise ValueError("the fp16 graph has a cycle or an undefined input")
        pending = waiting
    del graph.node[:]
    graph.node.extend(ordered)


def _is_cast_to(node: Any, elem_type: int) -> bool:
    return node.op_type == "Cast" and any(a.name == "to" and a.i == elem_type for a in node.attribute)


def _elem_types(model: Any) -> dict[str, int]:
    onnx = require("onnx")
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in (*graph.input, *graph.value_info, *graph.output)}
    types.update({t.name: t.data_type for t in graph.initializer})
    return types


def _remove_dead_nodes(graph: Any) -> None:
    needed = {o.name for o in graph.output}
    alive = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            alive.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(alive))
    used = needed
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def check_no_infinite_constants(model: Any) -> None:
    """The fp32 mask fill must not turn into -inf in fp16 (softmax over -inf rows is NaN)."""
    onnx = require("onnx")
    numpy_helper = onnx.numpy_helper
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        tensors += [a.t for a in node.attribute if a.type == onnx.AttributeProto.TENSOR]
    for tensor in tensors:
        if tensor.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            values = numpy_helper.to_array(tensor)
            if not np.isfinite(values).all():
                raise ValueError(f"constant {tensor.name!r} has infinite values after fp16 conversion")
