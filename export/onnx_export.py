"""PyTorch AuxFormer -> `model.onnx` with dynamic batch / audio_len / video_len (the I/O of
docs/architecture.md).

The dynamo exporter (`torch.export` + `Dim`) keeps attention key lengths symbolic where the legacy
TorchScript exporter froze them. Two of its habits are guarded against here: an example dimension of
size 1 is silently specialised (the example uses sizes >= 2, distinct per axis, and every declared axis
is checked to be symbolic afterwards), and a graph that grew NonZero / ScatterND (data-dependent shapes
from masking tricks) is refused, since TensorRT and fp16 conversion handle those badly.
"""

from __future__ import annotations

import collections
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from auxformer.common import atomic
from auxformer.common.optional import require
from auxformer.runtime.contracts import DYNAMIC_AXES, INPUTS
from auxformer.runtime.manifest import Manifest
from auxformer.runtime.onnxruntime_runner import OnnxRuntimeOptions, inference_session
from auxformer.train.model import AuxFormer, attention_as

from .request import DEFAULT_OPSET

MIN_OPSET = 17
FORBIDDEN_OPS = frozenset({"NonZero", "ScatterND"})
# Node metadata the exporter adds that carries the exporting machine's source paths and FX text:
# useless to a deployed model. Name scopes stay (they say which module a node came from).
_DROPPED_NODE_METADATA = ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node")
# (batch, audio_len, video_len) of the example: >= 2 so nothing is specialised to 1, and pairwise
# different so the exporter cannot mistake one axis for another.
EXAMPLE_SIZES = (3, 29, 13)
# The attention form written into the graph. Measured on the paper configuration (3-s clips, one CPU
# thread): onnxruntime runs the explicit form 1.3x faster at batch 1 and 1.4x at batch 8 than the
# exporter's decomposition of scaled_dot_product_attention (more Slice / Concat / Reshape nodes); the
# two agree with PyTorch to 1e-6.
EXPORT_ATTENTION = "explicit"


class ExportError(RuntimeError):
    """The exported graph breaks the I/O contract (a fixed axis, a forbidden op, a failed check)."""


class ExportWrapper(nn.Module):
    """AuxFormer with the output tuple of docs/architecture.md: `logits, probs, logits_<head>...`.

    `probs` is softmax(logits / temperature) inside the graph, so every backend reports the same
    probabilities (the temperature is 1 until probability calibration sets one)."""

    def __init__(self, model: AuxFormer, heads: list[str], temperature: float = 1.0):
        super().__init__()
        self.model = model
        self.heads = list(heads)
        self.temperature = float(temperature)

    def forward(self, audio: Tensor, audio_mask: Tensor, video: Tensor, video_mask: Tensor) -> tuple[Tensor, ...]:
        out = self.model(audio, audio_mask, video, video_mask)
        probs = (out.logits / self.temperature).softmax(-1)
        return (out.logits, probs, *(out.heads[h] for h in self.heads))


def example_inputs(
    audio_dim: int, video_dim: int, sizes: tuple[int, int, int] = EXAMPLE_SIZES, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Random features with a padded tail on one clip, so masks are not trivially all-true."""
    b, ta, tv = sizes
    if min(sizes) < 2:
        raise ValueError(f"example sizes must be >= 2 (a size-1 axis is exported as fixed), got {sizes}")
    g = torch.Generator().manual_seed(seed)
    audio_mask = torch.ones(b, ta, dtype=torch.bool)
    video_mask = torch.ones(b, tv, dtype=torch.bool)
    audio_mask[0, ta // 2 :] = False
    video_mask[-1, tv // 2 :] = False
    return (
        torch.randn(b, ta, audio_dim, generator=g),
        audio_mask,
        torch.randn(b, tv, video_dim, generator=g),
        video_mask,
    )


@dataclass
class OnnxExport:
    path: Path
    opset: int
    node_count: int
    op_counts: dict[str, int]
    optimized_node_count: int  # after onnxruntime's graph optimisations (what the runtime executes)
    seconds: float
    size_bytes: int


def export_onnx(
    model: AuxFormer,
    manifest: Manifest,
    out_path: str | Path,
    opset: int = DEFAULT_OPSET,
    example_sizes: tuple[int, int, int] = EXAMPLE_SIZES,
) -> OnnxExport:
    """Export, check and write `out_path` atomically; raise ExportError if the contract is broken."""
    onnx = require("onnx")
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: LayerNormalization needs opset >= {MIN_OPSET}")
    t0 = time.perf_counter()
    wrapper = ExportWrapper(model.eval(), manifest.heads, manifest.temperature).eval()
    args = example_inputs(model.cfg.audio_dim, model.cfg.video_dim, example_sizes)
    dims = {axis: torch.export.Dim(axis, min=1) for axis in ("batch", "audio_len", "video_len")}
    dynamic_shapes = {name: {i: dims[axis] for i, axis in enumerate(axes)} for name, axes in DYNAMIC_AXES.items()}
    with attention_as(model, EXPORT_ATTENTION):
        proto = dynamo_export(wrapper, args, list(INPUTS), manifest.output_names, dynamic_shapes, opset)
    _strip_node_metadata(proto)
    manifest.embed(proto)
    check_dynamic_axes(proto)
    check_ops(proto)
    onnx.checker.check_model(proto, full_check=True)
    out_path = Path(out_path)
    with atomic.atomic_path(out_path) as tmp:
        onnx.save_model(proto, str(tmp))
    optimized = optimized_node_count(out_path)
    return OnnxExport(
        path=out_path,
        opset=opset,
        node_count=len(proto.graph.node),
        op_counts=dict(collections.Counter(n.op_type for n in proto.graph.node).most_common()),
        optimized_node_count=optimized,
        seconds=time.perf_counter() - t0,
        size_bytes=out_path.stat().st_size,
    )


def dynamo_export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    input_names: list[str],
    output_names: list[str],
    dynamic_shapes: Any,
    opset: int,
) -> Any:
    """torch.onnx's dynamo exporter, quietly, to an in-memory ModelProto with the weights inside."""
    # torch logs one warning per torchvision op it cannot register; torchvision is not used here
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        # the exporter's chatter about reused axis names and its own deprecations; callers check the
        # axes afterwards, which is the part that matters
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*axis name.*")
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    return program.model_proto


def _strip_node_metadata(proto: Any) -> None:
    for node in proto.graph.node:
        kept = [p for p in node.metadata_props if p.key not in _DROPPED_NODE_METADATA]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)


def read_manifest(path: str | Path) -> Manifest:
    """The manifest embedded in an ONNX file (onnxruntime-free; the runtime reads it through its session)."""
    onnx = require("onnx")
    proto = onnx.load_model(str(path), load_external_data=False)
    return Manifest.from_metadata({p.key: p.value for p in proto.metadata_props}, str(path))


def _dims(value_info: Any) -> list[str | int]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in shape.dim]


def check_dynamic_axes(proto: Any) -> None:
    """Every declared dynamic axis is symbolic (named as docs/architecture.md says) on every input, and the batch
    axis on every output; otherwise raise ExportError naming each axis that came out fixed."""
    graph = proto.graph
    problems = []
    inputs = {vi.name: _dims(vi) for vi in graph.input}
    for name, axes in DYNAMIC_AXES.items():
        dims = inputs.get(name)
        if dims is None:
            problems.append(f"input {name!r} is missing")
            continue
        for i, axis in enumerate(axes):
            if dims[i] != axis:
                problems.append(f"{name} axis {i} ({axis}) came out as {dims[i]!r}")
    for vi in graph.output:
        first = _dims(vi)[0]
        if first != "batch":
            problems.append(f"output {vi.name} axis 0 (batch) came out as {first!r}")
    if problems:
        raise ExportError("dynamic axes were fixed by the export: " + "; ".join(problems))


def check_ops(proto: Any) -> None:
    found = sorted({n.op_type for n in proto.graph.node} & FORBIDDEN_OPS)
    if found:
        raise ExportError(f"the graph contains {', '.join(found)} (data-dependent shapes); rewrite the masking op")


def optimized_node_count(path: Path) -> int:
    """Load `path` in the runtime's onnxruntime session on the CPU (proving it loads) and count the nodes
    of the graph it optimised."""
    onnx = require("onnx")
    optimized = path.with_name(f".{path.name}.optimized.tmp")
    try:
        inference_session(path, "cpu", OnnxRuntimeOptions(optimized_model_path=optimized))
        return len(onnx.load_model(str(optimized)).graph.node)
    finally:
        optimized.unlink(missing_ok=True)
