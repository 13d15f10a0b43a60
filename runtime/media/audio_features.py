"""Audio features: openSMILE ComParE_2016 low-level descriptors and their deltas, 130 dims per 10 ms.

openSMILE computes the two levels in separate passes whose row counts differ by a frame or two at
the end (docs/model.md, "Inputs"): they are joined by position and trimmed to the shorter. The signal comes
from our own decoder through `process_signal`, so no mediainfo / file probing is involved.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from auxformer.common.optional import require

from ..contracts import AUDIO_DIM

NAME = "ComParE_2016 LLD + deltas (openSMILE)"
# below this openSMILE returns a single NaN row: there is no analysis frame to speak of
MIN_SECONDS = 0.1


@dataclass
class AudioFeatures:
    values: np.ndarray  # float32 [Ta, 130]
    mask: np.ndarray  # bool [Ta]
    reason: str = ""  # why the mask has no true entry, when it has none


class ComParE:
    """Callable extractor; build once per process (the openSMILE configs take ~0.2 s to load)."""

    name = NAME

    def __init__(self, silence_dbfs: float = -60.0):
        opensmile = require("opensmile")
        self.silence = 10 ** (silence_dbfs / 20)
        self.smiles = [
            opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016, feature_level=level)
            for level in (opensmile.FeatureLevel.LowLevelDescriptors, opensmile.FeatureLevel.LowLevelDescriptors_Deltas)
        ]

    def __call__(self, signal: np.ndarray | None, rate: int) -> AudioFeatures:
        if signal is None:
            return _missing(0, "no audio stream")
        if len(signal) < MIN_SECONDS * rate:
            return _missing(0, f"audio stream too short ({len(signal) / rate:.3f} s)")
        values = self.rows(signal, rate)
        n = len(values)
        if float(np.abs(signal).max(initial=0.0)) < self.silence:
            return _missing(n, "audio track is silent")
        mask = np.isfinite(values).all(axis=1)
        values[~mask] = 0.0
        return AudioFeatures(values, mask, "" if mask.any() else "no valid audio frame")

    def rows(self, signal: np.ndarray, rate: int) -> np.ndarray:
        """The raw descriptor rows [n, 130] of `signal` (NaN where openSMILE had no frame), unmasked."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "segment too short": the caller masks it
            lld, delta = (s.process_signal(signal, rate).to_numpy(np.float32) for s in self.smiles)
        n = min(len(lld), len(delta))
        values = np.concatenate([lld[:n], delta[:n]], axis=1)
        if values.shape[1] != AUDIO_DIM:
            raise RuntimeError(f"openSMILE gave {values.shape[1]} dims, expected {AUDIO_DIM}")
        return values

    @property
    def names(self) -> list[str]:
        """The 130 descriptor names, in column order."""
        return [*self.smiles[0].feature_names, *self.smiles[1].feature_names]


def _missing(frames: int, reason: str) -> AudioFeatures:
    return AudioFeatures(np.zeros((frames, AUDIO_DIM), np.float32), np.zeros(frames, bool), reason)
