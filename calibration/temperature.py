"""Temperature scaling (Guo et al., 2017) and the calibration measures that judge it, in numpy.

One scalar T divides the logits: probabilities become softmax(logits / T); the argmax, hence every
label, stays the same. T is fitted on the dev set by minimising the negative log-likelihood, which is
convex in 1/T, so a bracketed golden-section search finds the optimum without torch or scipy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from auxformer.common.metrics import softmax

ECE_BINS = 15
INV_T_RANGE = (1 / 20, 20.0)  # T in [0.05, 20]: wider is never useful and only invites overflow


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels under softmax(logits / T)."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), np.asarray(labels, int)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, iterations: int = 80) -> float:
    """The T that minimises dev NLL (golden-section search over log(1/T))."""
    if len(labels) == 0:
        return 1.0
    lo, hi = (math.log(v) for v in INV_T_RANGE)
    ratio = (math.sqrt(5) - 1) / 2

    def loss(log_inv_t: float) -> float:
        return nll(logits, labels, 1.0 / math.exp(log_inv_t))

    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(iterations):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    return float(1.0 / math.exp((lo + hi) / 2))


@dataclass
class ReliabilityBins:
    """Per confidence bin: mean confidence, accuracy and count (equal-width bins on [0, 1])."""

    edges: list[float]
    confidence: list[float]
    accuracy: list[float]
    count: list[int]


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> ReliabilityBins:
    probs = np.asarray(probs, np.float64)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    correct = pred == np.asarray(labels, int)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # right-closed bins, so a confidence of exactly 1 lands in the last bin
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    safe = np.maximum(count, 1)
    return ReliabilityBins(
        edges=edges.tolist(),
        confidence=(np.bincount(which, conf, bins) / safe).tolist(),
        accuracy=(np.bincount(which, correct.astype(float), bins) / safe).tolist(),
        count=count.tolist(),
    )


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over confidence bins."""
    r = reliability(probs, labels, bins)
    n = max(sum(r.count), 1)
    return float(sum(c / n * abs(a - f) for c, a, f in zip(r.count, r.accuracy, r.confidence, strict=True)))


@dataclass
class CalibrationReport:
    temperature: float
    head_temperatures: dict[str, float] = field(default_factory=dict)
    # {"dev": {"ece_before", "ece_after", "nll_before", "nll_after"}, "test": {...}}
    scores: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scores(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict[str, float]:
    return {
        "ece_before": expected_calibration_error(softmax(logits), labels),
        "ece_after": expected_calibration_error(softmax(logits / temperature), labels),
        "nll_before": nll(logits, labels),
        "nll_after": nll(logits, labels, temperature),
    }


def calibrate(
    dev_logits: np.ndarray,
    dev_labels: np.ndarray,
    head_logits: dict[str, np.ndarray] | None = None,
    evaluation: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> CalibrationReport:
    """Fit T for the fused output on dev (and one per head if given); score dev and `evaluation` sets."""
    t = fit_temperature(dev_logits, dev_labels)
    heads = {name: fit_temperature(x, dev_labels) for name, x in (head_logits or {}).items()}
    report = CalibrationReport(t, heads, {"dev": scores(dev_logits, dev_labels, t)})
    for name, (logits, labels) in (evaluation or {}).items():
        report.scores[name] = scores(logits, labels, t)
    return report
