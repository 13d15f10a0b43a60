"""Temperature scaling and calibration measures (numpy, no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from auxformer.calibration.temperature import (
    calibrate,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability,
)
from auxformer.common.metrics import softmax


def _overconfident(n: int = 4000, classes: int = 6, scale: float = 3.0, seed: int = 0):
    """Labels drawn from softmax(z); the 'model' reports scale * z, i.e. it is overconfident by `scale`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, classes))
    p = softmax(z)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return z * scale, labels


def test_fit_recovers_the_true_temperature():
    logits, labels = _overconfident(scale=3.0)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    assert nll(logits, labels, t) < nll(logits, labels) - 0.1
    under, labels_u = _overconfident(scale=0.5, seed=1)
    assert fit_temperature(under, labels_u) == pytest.approx(0.5, rel=0.1)


def test_scaling_lowers_ece_and_keeps_labels():
    logits, labels = _overconfident(scale=3.0)
    report = calibrate(logits, labels, evaluation={"test": _overconfident(scale=3.0, seed=7)})
    for part in ("dev", "test"):
        s = report.scores[part]
        assert s["ece_after"] < s["ece_before"] / 2 and s["nll_after"] < s["nll_before"]
    assert (softmax(logits / report.temperature).argmax(1) == logits.argmax(1)).all()


def test_ece_and_bins_on_known_values():
    # four predictions at confidence 0.9, three right: |0.75 - 0.9| = 0.15 in that bin
    probs = np.array([[0.9, 0.1]] * 4)
    labels = np.array([0, 0, 0, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.15)
    r = reliability(probs, labels)
    assert sum(r.count) == 4 and r.count[13] == 4  # 0.9 falls in (0.8667, 0.9333]
    assert expected_calibration_error(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])) == 0.0


def test_per_head_temperatures():
    logits, labels = _overconfident(scale=2.0)
    report = calibrate(logits, labels, head_logits={"audio": logits / 2})
    assert report.head_temperatures["audio"] == pytest.approx(1.0, rel=0.1)
