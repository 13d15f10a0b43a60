"""Classification metrics in numpy: confusion matrix, per-class / macro / micro F1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def f1_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class F1; a class never predicted nor present scores 0 (it has no support to earn it)."""
    tp = np.diag(cm).astype(float)
    denom = cm.sum(0) + cm.sum(1)  # 2TP + FP + FN
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """macro_f1, micro_f1 (= accuracy for single-label), per-class F1 and the confusion matrix."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    cm = confusion_matrix(y_true, y_pred, len(labels))
    per_class = f1_from_confusion(cm)
    present = cm.sum(1) > 0  # macro-F1 over classes that occur in the reference
    return {
        "macro_f1": float(per_class[present].mean()) if present.any() else 0.0,
        "micro_f1": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        "per_class_f1": {label: float(f) for label, f in zip(labels, per_class, strict=True)},
        "confusion": cm.tolist(),
        "n": len(y_true),
    }


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)
