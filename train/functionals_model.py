"""The classical baseline's model: standardised functionals -> multinomial logistic regression with an L2
penalty, fitted by L-BFGS (scipy). Numpy only at prediction time.

Saved as `model.npz` (mean, scale, weights, bias; plain arrays, read with `allow_pickle=False`) and
`model.json` (labels, feature set, penalty): no pickle. It has no ONNX export: it reads utterance-level
functionals, which the exported models' inputs (LLD sequences) do not carry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.common import atomic
from auxformer.common.metrics import softmax

WEIGHTS_FILE = "model.npz"
META_FILE = "model.json"


def class_weights(y: np.ndarray, classes: int, how: str) -> np.ndarray:
    """Per-sample loss weights: 1, or (balanced) n / (classes_present * count of the sample's class)."""
    if how == "none":
        return np.ones(len(y))
    counts = np.bincount(y, minlength=classes).astype(float)
    present = int((counts > 0).sum())
    return len(y) / (present * counts[y])


@dataclass
class FunctionalsLinear:
    labels: list[str]
    feature_set: str
    l2: float
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # [D, C]
    bias: np.ndarray  # [C]
    info: dict[str, Any] = field(default_factory=dict)  # how it was fitted (iterations, convergence)

    @property
    def parameters(self) -> int:
        return int(self.weights.size + self.bias.size)

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        labels: list[str],
        feature_set: str,
        l2: float,
        class_weight: str = "balanced",
        max_iter: int = 1000,
    ) -> FunctionalsLinear:
        """Minimise the (weighted) mean log-loss + l2/2 |W|^2 on standardised x (the bias is not penalised).

        Solved in its dual form: the optimal W lies in the span of the training clips (W = Z^T A), so
        L-BFGS works on A [N, C] through the Gram matrix Z Z^T, not on W [D, C]: with 6,373 ComParE
        functionals and a few hundred clips that is ~50x fewer unknowns, the same optimum."""
        from scipy.optimize import minimize

        x = np.asarray(x, np.float64)
        mean = x.mean(0)
        scale = x.std(0)
        scale[scale < 1e-8] = 1.0  # a constant feature stays zero after centring
        z = (x - mean) / scale
        gram = z @ z.T
        n, c = len(z), len(labels)
        onehot = np.eye(c)[y]
        w_sample = class_weights(y, c, class_weight)
        w_sample = w_sample / w_sample.sum()

        def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            a, b = theta[: n * c].reshape(n, c), theta[n * c :]
            ka = gram @ a
            logits = ka + b
            logits -= logits.max(1, keepdims=True)
            log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
            loss = -(w_sample * (onehot * log_p).sum(1)).sum() + 0.5 * l2 * (a * ka).sum()
            delta = (np.exp(log_p) - onehot) * w_sample[:, None]
            return float(loss), np.concatenate([(gram @ (delta + l2 * a)).ravel(), delta.sum(0)])

        result = minimize(loss_grad, np.zeros(n * c + c), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
        a, b = result.x[: n * c].reshape(n, c), result.x[n * c :]
        info = {"iterations": int(result.nit), "converged": bool(result.success), "train_clips": n}
        return cls(list(labels), feature_set, l2, mean, scale, z.T @ a, b, info)

    def logits(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float64) - self.mean) / self.scale
        return (z @ self.weights + self.bias).astype(np.float32)

    def probs(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x), axis=1)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        arrays = {"mean": self.mean, "scale": self.scale, "weights": self.weights, "bias": self.bias}
        atomic.write_bytes(folder / WEIGHTS_FILE, _npz_bytes(arrays))
        meta = {"labels": self.labels, "feature_set": self.feature_set, "l2": self.l2, "info": self.info}
        atomic.write_json(folder / META_FILE, meta)

    @classmethod
    def load(cls, folder: str | Path) -> FunctionalsLinear:
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("mean", "scale", "weights", "bias")}
        return cls(meta["labels"], meta["feature_set"], float(meta["l2"]), **arrays, info=meta.get("info", {}))


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
