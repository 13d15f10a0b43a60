"""Explicit INT8 quantisation: a Q/DQ ONNX model that onnxruntime, TensorRT and Triton all consume.

Static post-training quantisation with onnxruntime's `quantize_static` in QDQ format, symmetric int8
activations and weights (what TensorRT expects), per-channel weights. Only the MatMul/Gemm ops with
constant weights are quantised: quantising everything wrecks accuracy, since the mask path (its
`Where` with the lowest finite float) calibrates to a useless [-3.4e38, 0] range, and softmax,
LayerNorm and the attention products stay far more accurate in float.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from auxformer.common import atomic
from auxformer.common.optional import require
from auxformer.runtime.manifest import Manifest

from .dataset import CalibrationSet

QUANTIZED_OPS = ("MatMul", "Gemm")
# what an INT8 model must keep against fp32 PyTorch, pooled over the verification cases
VERIFY_THRESHOLDS = {"min_agreement": 0.97, "max_f1_delta": 0.01}
METHODS = ("minmax", "entropy", "percentile")


@dataclass
class QuantizationInfo:
    method: str
    clips: int
    batches: int
    ops: tuple[str, ...]
    quantized_nodes: int
    seconds: float


class _Reader:
    """Streams the calibration batches to onnxruntime's calibrator (one padded batch per call)."""

    def __init__(self, calib: CalibrationSet, input_names: list[str]):
        self.calib, self.names = calib, input_names
        self.iterator = iter(calib)

    def get_next(self) -> dict[str, Any] | None:
        batch = next(self.iterator, None)
        return None if batch is None else {k: batch[k] for k in self.names}

    def rewind(self) -> None:
        self.iterator = iter(self.calib)


def quantize(
    onnx_path: str | Path, calib: CalibrationSet, out_path: str | Path, method: str = "minmax"
) -> QuantizationInfo:
    """fp32 `onnx_path` -> Q/DQ int8 `out_path` (written atomically), calibrated on `calib`.

    The manifest travels along with `precision = "int8"` and how it was quantised."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    onnx = require("onnx")
    q = require("onnxruntime.quantization")
    t0 = time.perf_counter()
    source = onnx.load_model(str(onnx_path))
    manifest = Manifest.from_metadata({p.key: p.value for p in source.metadata_props}, str(onnx_path))
    input_names = [i.name for i in source.graph.input]
    method_enum = {
        "minmax": q.CalibrationMethod.MinMax,
        "entropy": q.CalibrationMethod.Entropy,
        "percentile": q.CalibrationMethod.Percentile,
    }[method]
    reader = _Reader(calib, input_names)
    # the calibrator writes its augmented model next to its inputs: keep that out of the user's folder
    with tempfile.TemporaryDirectory(prefix="auxformer-int8-") as tmp:
        # onnxruntime's recommended pre-pass (shape inference, graph clean-up); its symbolic shape
        # inference cannot follow the dynamo graph's dynamic Unsqueeze axes, plain ONNX inference can
        prepared, out_tmp = Path(tmp) / "model.pre.onnx", Path(tmp) / "model.int8.onnx"
        shape_inference = require("onnxruntime.quantization.shape_inference")
        shape_inference.quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        q.quantize_static(
            str(prepared),
            str(out_tmp),
            reader,
            quant_format=q.QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=True,
            activation_type=q.QuantType.QInt8,
            weight_type=q.QuantType.QInt8,
            calibrate_method=method_enum,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "MatMulConstBOnly": True},
        )
        model = onnx.load_model(str(out_tmp))
    quantized = sum(n.op_type == "QuantizeLinear" for n in model.graph.node)
    if quantized == 0:
        raise RuntimeError(f"{onnx_path}: no MatMul/Gemm was quantised; is this an auxformer export?")
    info = QuantizationInfo(
        method, sum(len(ids) for ids in calib.clip_ids), len(calib), QUANTIZED_OPS, quantized, time.perf_counter() - t0
    )
    manifest.precision = "int8"
    manifest.training = replace(manifest.training, int8=asdict(info))
    manifest.embed(model)
    with atomic.atomic_path(out_path) as tmp_out:
        onnx.save_model(model, str(tmp_out))
    return info
