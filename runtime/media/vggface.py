"""VGG-Face (VGG16 trained on faces) up to fc7, as an ONNX graph run by onnxruntime: no torch anywhere.

Weights come from the user's `vgg_face_dag.pth`, the widely shared PyTorch state dict of the Oxford
VGG-Face model (keys conv1_1 ... conv5_3, fc6, fc7, fc8), read with `torch_state` (which refuses
anything but tensors) and written as ONNX with the `onnx` package. This is the one VGG-Face
implementation: the front end's `vggface` embedder converts the weights once and caches the graph
under the user's cache folder, keyed by the weights' content; `auxformer-export --face-weights`
writes the same graph as `face_encoder.onnx` beside the model.

The graph's contract (docs/architecture.md, "Model package"): `faces` uint8 RGB crops
[frames, 224, 224, 3] -> `embeddings` float32 [frames, 4096], `frames` dynamic. It does the
preprocessing itself and ends at fc7 after its ReLU; fc8 (the identity classifier) is dropped.
onnxruntime's TensorRT / CUDA providers run it on a GPU where onnxruntime-gpu is installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from auxformer.common import atomic
from auxformer.common.optional import require

from ..hashing import cache_root, file_digest
from ..onnxruntime_runner import OnnxRuntimeOptions, inference_session
from .torch_state import read_state_dict

WEIGHTS_HELP = (
    "the 'vggface' embedder needs the VGG-Face weights file vgg_face_dag.pth (Samuel Albanie's PyTorch "
    "conversion of the Oxford VGG-Face model, ~580 MB, listed at "
    "https://www.robots.ox.ac.uk/~albanie/pytorch-models.html): download it and pass its path "
    "(--vggface-weights PATH, or FeatureSettings(vggface_weights=PATH)); or use the default 'expression' embedder"
)
# "unit" (default): pixels scaled to [-1, 1] as docs/model.md, "Inputs" describes;
# "dag-mean": the RGB mean subtraction the weights were trained with (vgg_face_dag meta)
PREPROCESS = {
    "dag-mean": ((129.186279296875, 104.76238250732422, 93.59396362304688), 1.0),
    "unit": ((127.5, 127.5, 127.5), 1 / 127.5),
}
CONV_BLOCKS = (2, 2, 3, 3, 3)  # convolutions per block, each block ends with a 2x2 max-pool
INPUT_SIZE = 224
OPSET = 17
NAME = "vggface"  # the front end's name for this embedder
INPUT, OUTPUT, FRAMES = "faces", "embeddings", "frames"
GRAPH_VERSION = 2  # part of the cache key: a graph cached by an older version (other I/O names) is rebuilt


def cache_dir() -> Path:
    return cache_root() / "vggface"


def conv_names() -> list[str]:
    return [f"conv{b}_{i}" for b, n in enumerate(CONV_BLOCKS, 1) for i in range(1, n + 1)]


def build_onnx(state: dict[str, np.ndarray], preprocess: str = "unit") -> bytes:
    """The ONNX graph of VGG16 up to relu7 with `state`'s weights (any widths, for tests).

    Raises ValueError for a state dict that is not vgg_face_dag's."""
    onnx = require("onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    missing = [f"{n}.{p}" for n in [*conv_names(), "fc6", "fc7"] for p in ("weight", "bias") if f"{n}.{p}" not in state]
    if missing:
        raise ValueError(
            f"not a vgg_face_dag state dict: missing {', '.join(missing[:4])}{'...' if len(missing) > 4 else ''}"
        )
    if preprocess not in PREPROCESS:
        raise ValueError(f"preprocess must be one of {', '.join(PREPROCESS)}, got {preprocess!r}")
    mean, scale = PREPROCESS[preprocess]
    inits = [
        numpy_helper.from_array(np.asarray(mean, np.float32).reshape(1, 3, 1, 1), "mean"),
        numpy_helper.from_array(np.full((1, 1, 1, 1), scale, np.float32), "scale"),
    ]
    nodes = [
        helper.make_node("Cast", [INPUT], ["faces_f"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Transpose", ["faces_f"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["nchw", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "scale"], ["x0"]),
    ]
    x = "x0"
    names = iter(conv_names())
    for block, convs in enumerate(CONV_BLOCKS, 1):
        for _ in range(convs):
            name = next(names)
            w, b = state[f"{name}.weight"].astype(np.float32), state[f"{name}.bias"].astype(np.float32)
            inits += [numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")]
            nodes += [
                helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [name], pads=[1, 1, 1, 1]),
                helper.make_node("Relu", [name], [f"relu_{name}"]),
            ]
            x = f"relu_{name}"
        nodes.append(helper.make_node("MaxPool", [x], [f"pool{block}"], kernel_shape=[2, 2], strides=[2, 2]))
        x = f"pool{block}"
    nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
    x = "flat"
    for name in ("fc6", "fc7"):
        w, b = state[f"{name}.weight"].astype(np.float32), state[f"{name}.bias"].astype(np.float32)
        inits += [numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")]
        out = OUTPUT if name == "fc7" else f"relu_{name}"
        nodes += [
            helper.make_node("Gemm", [x, f"{name}.weight", f"{name}.bias"], [f"{name}_lin"], transB=1),
            helper.make_node("Relu", [f"{name}_lin"], [out]),
        ]
        x = out
    graph = helper.make_graph(
        nodes,
        "vggface_fc7",
        [helper.make_tensor_value_info(INPUT, onnx.TensorProto.UINT8, [FRAMES, INPUT_SIZE, INPUT_SIZE, 3])],
        [helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, [FRAMES, embedding_dim(state)])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="auxformer")
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    onnx.checker.check_model(model)
    return model.SerializeToString()


def embedding_dim(state: dict[str, np.ndarray]) -> int:
    """Width of the embeddings (fc7's outputs): 4096 for VGG-Face."""
    return int(state["fc7.weight"].shape[0])


def ensure_onnx(weights: str | Path, preprocess: str = "unit") -> Path:
    """The cached ONNX graph for `weights`, converting it on first use."""
    out = cache_dir() / f"vggface-{file_digest(weights, size=16)}-{preprocess}-v{GRAPH_VERSION}.onnx"
    if not out.is_file():
        atomic.write_bytes(out, build_onnx(read_state_dict(weights), preprocess))
    return out


def session_providers(ort: object, wanted: tuple[str, ...]) -> list[str]:
    """() -> CPU; ("auto",) -> every provider this onnxruntime build has (TensorRT, CUDA, CPU)."""
    available = ort.get_available_providers()  # type: ignore[attr-defined]
    if wanted == ("auto",):
        return list(available)
    chosen = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
    return chosen


class VggFace:
    size = INPUT_SIZE
    batch = 16

    def __init__(
        self, weights: str | None, providers: tuple[str, ...] = (), threads: int = 1, preprocess: str = "unit"
    ):
        if not weights or not Path(weights).is_file():
            raise FileNotFoundError(WEIGHTS_HELP + (f" (not found: {weights})" if weights else ""))
        ort = require("onnxruntime")
        path = ensure_onnx(weights, preprocess)
        # made like every other onnxruntime session of the package; extraction workers run one thread each
        options = OnnxRuntimeOptions(providers=session_providers(ort, providers), threads=threads)
        self.session = inference_session(path, options=options)
        self.dim = int(self.session.get_outputs()[0].shape[1])

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """uint8 RGB [N, 224, 224, 3] -> float32 [N, dim]."""
        return self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(crops, np.uint8)})[0]
