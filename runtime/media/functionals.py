"""Utterance-level openSMILE functionals: one fixed-length vector per clip, for the classical baseline.

`ComParE_2016` (6,373 statistics of 65 LLDs and their deltas, the INTERSPEECH 2013-16 challenge set)
and `eGeMAPSv02` (88, the Geneva minimalistic set). They are computed from the same decoded signal as
the LLDs, with leading and trailing digital silence (padding) cut off first, so a padded clip's
statistics describe its speech, not its padding.
"""

from __future__ import annotations

import warnings

import numpy as np

from auxformer.common.optional import require

from .audio_features import MIN_SECONDS

FEATURE_SETS = ("ComParE_2016", "eGeMAPSv02")


def check_sets(feature_sets: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    unknown = sorted(set(feature_sets) - set(FEATURE_SETS))
    if unknown:
        raise ValueError(f"unknown functional sets {unknown}: choose from {', '.join(FEATURE_SETS)}")
    return tuple(feature_sets)


def trim_digital_silence(signal: np.ndarray, floor: float) -> np.ndarray:
    """The signal from its first to its last sample at or above `floor` in magnitude (empty if none)."""
    loud = np.flatnonzero(np.abs(signal) >= floor)
    return signal[loud[0] : loud[-1] + 1] if len(loud) else signal[:0]


class Functionals:
    """Callable: signal -> {set name: float32 [D]}; empty when the signal gives no analysis frame."""

    def __init__(self, feature_sets: tuple[str, ...], digital_silence_dbfs: float = -90.0):
        opensmile = require("opensmile")
        self.feature_sets = check_sets(feature_sets)
        self.floor = 10 ** (digital_silence_dbfs / 20)
        self.smiles = {
            name: opensmile.Smile(
                feature_set=getattr(opensmile.FeatureSet, name), feature_level=opensmile.FeatureLevel.Functionals
            )
            for name in self.feature_sets
        }

    def names(self, feature_set: str) -> list[str]:
        return list(self.smiles[feature_set].feature_names)

    def __call__(self, signal: np.ndarray | None, rate: int) -> dict[str, np.ndarray]:
        if signal is None or not self.smiles:
            return {}
        speech = trim_digital_silence(signal, self.floor)
        if len(speech) < MIN_SECONDS * rate:
            return {}
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for name, smile in self.smiles.items():
                values = smile.process_signal(speech, rate).to_numpy(np.float32).reshape(-1)
                if np.isfinite(values).all():  # a vector with holes is no vector: the clip has none
                    out[name] = values
        return out
