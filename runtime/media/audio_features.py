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
# ComParE's LLD frame i analyses [i * HOP, i * HOP + WINDOW) (its longest window, the voicing one);
# the 3-frame moving average (`_sma`) reaches one hop further either side
HOP_SECONDS = 0.01
WINDOW_SECONDS = 0.06


@dataclass
class AudioFeatures:
    values: np.ndarray  # float32 [Ta, 130]
    mask: np.ndarray  # bool [Ta]
    reason: str = ""  # why the mask has no true entry, when it has none


class ComParE:
    """Callable extractor; build once per process (the openSMILE configs take ~0.2 s to load)."""

    name = NAME

    def __init__(self, silence_dbfs: float = -60.0, digital_silence_dbfs: float = -90.0):
        opensmile = require("opensmile")
        self.silence = 10 ** (silence_dbfs / 20)
        self.digital_silence = 10 ** (digital_silence_dbfs / 20)
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
        mask = np.isfinite(values).all(axis=1) & ~silent_frames(signal, rate, n, self.digital_silence)
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


def silent_frames(signal: np.ndarray, rate: int, frames: int, floor: float) -> np.ndarray:
    """bool [frames]: true where every sample a frame's LLDs see (its window, widened by the smoothing)
    is below `floor` in magnitude."""
    loud = np.concatenate([[0], np.cumsum(np.abs(signal) >= floor)])
    hop = HOP_SECONDS * rate
    starts = np.arange(frames) * hop - hop
    ends = starts + WINDOW_SECONDS * rate + 2 * hop
    starts = np.clip(np.round(starts).astype(np.int64), 0, len(signal))
    ends = np.clip(np.round(ends).astype(np.int64), 0, len(signal))
    return loud[ends] == loud[starts]


def _missing(frames: int, reason: str) -> AudioFeatures:
    return AudioFeatures(np.zeros((frames, AUDIO_DIM), np.float32), np.zeros(frames, bool), reason)
