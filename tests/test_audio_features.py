"""The audio descriptors in one openSMILE run (`lld_config`) against the opensmile package's own two
feature levels, which each run the whole ComParE_2016 configuration."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from auxformer.runtime.media.audio_features import ComParE, lld_config
from auxformer.runtime.media.decode import decode

opensmile = pytest.importorskip("opensmile")

RATE = 16000
EMODB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "emodb" / "wav"


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """A voiced signal whose pitch glides, with pauses: every descriptor family moves."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 60 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 10)) * (np.sin(2 * np.pi * 1.3 * t) > -0.3)
    x = x + np.random.default_rng(seed).normal(0, 0.01, len(t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def package_rows(signal: np.ndarray) -> tuple[np.ndarray, list[str]]:
    levels = (opensmile.FeatureLevel.LowLevelDescriptors, opensmile.FeatureLevel.LowLevelDescriptors_Deltas)
    smiles = [opensmile.Smile(opensmile.FeatureSet.ComParE_2016, level) for level in levels]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        lld, delta = (s.process_signal(signal, RATE).to_numpy(np.float32) for s in smiles)
    n = min(len(lld), len(delta))
    return np.concatenate([lld[:n], delta[:n]], axis=1), [*smiles[0].feature_names, *smiles[1].feature_names]


def signals() -> list[np.ndarray]:
    out = [speechlike(2.5), speechlike(0.4, seed=1)]
    out += [decode(p).audio for p in sorted(EMODB.glob("*.wav"))[:2]]  # real speech, where the data is here
    return out


def test_one_run_gives_the_packages_two_levels_exactly():
    compare = ComParE()
    for signal in signals():
        expected, names = package_rows(signal)
        got = compare.rows(signal, RATE)
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    assert compare.names == names


def test_another_step_changes_only_the_frame_steps(tmp_path):
    conf = lld_config(16, cache=tmp_path)
    core = (conf.parent / "ComParE_2016_core.lld.conf.inc").read_text()
    assert core.count("frameStep = 0.016") + core.count("frameStep=0.016") == 2
    signal = speechlike(3.0)
    rows10, rows16 = ComParE().rows(signal, RATE), ComParE(step_ms=16).rows(signal, RATE)
    # 3 s at a 10 ms step gives about 300 rows, at 16 ms about 188 (the paper's count)
    assert abs(len(rows10) - 300) <= 6 and abs(len(rows16) - 188) <= 6
    assert np.isfinite(rows16).all(axis=1).mean() > 0.9
