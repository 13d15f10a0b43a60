"""Voice activity per descriptor row: rows without speech are masked, so a window of silence or
background noise does not count as audio present, and the audio head does not vote on it.

Detectors (chosen by measurement on real speech, EmoDB mixed with noise: see README, "Timelines"):
- `voicing` (default): openSMILE's own voicing probability (`voicingFinalUnclipped_sma`, already
  among the 130 descriptors, so free) above `threshold` on rows loud enough, widened by `hangover`
  seconds on each side so the unvoiced consonants and short pauses inside speech stay in;
- `energy`: frame energy (`pcm_RMSenergy_sma`) above `energy_dbfs`, widened the same way; noise
  as loud as the threshold counts as speech;
- `none`: every finite row is audio (the clip mode's behaviour).
Rows are judged on the block plus its context (audio.py), so the widening crosses block borders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DETECTORS = ("voicing", "energy", "none")
VOICING, ENERGY = "voicingFinalUnclipped_sma", "pcm_RMSenergy_sma"


@dataclass(frozen=True)
class VadSettings:
    detector: str = "voicing"
    threshold: float = 0.7  # voicing probability of a voiced row (0.6 lets pink noise through: README)
    energy_dbfs: float = -45.0  # rows quieter than this are never speech (and, for `energy`, louder ones are)
    hangover: float = 0.25  # seconds of widening on each side of a speech row

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"vad detector must be one of {', '.join(DETECTORS)}, got {self.detector!r}")


class VoiceActivity:
    def __init__(self, settings: VadSettings, names: list[str], fps: float):
        """`fps`: descriptor rows per second (`FeatureSettings.audio_fps`)."""
        self.settings = settings
        self.voicing = names.index(VOICING)
        self.energy = names.index(ENERGY)
        self.widen = round(settings.hangover * fps)

    def __call__(self, signal: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """bool [len(rows)]: which rows hold speech."""
        s = self.settings
        if s.detector == "none" or not len(rows):
            return np.ones(len(rows), bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            loud = 20 * np.log10(np.nan_to_num(rows[:, self.energy], nan=0.0) + 1e-12) > s.energy_dbfs
        if s.detector == "energy":
            return dilate(loud, self.widen)
        voiced = np.nan_to_num(rows[:, self.voicing], nan=0.0) > s.threshold
        return dilate(voiced & loud, self.widen)


def dilate(mask: np.ndarray, k: int) -> np.ndarray:
    """`mask` widened by `k` rows on each side."""
    if k <= 0 or not mask.any():
        return mask.copy()
    padded = np.convolve(mask.astype(np.int32), np.ones(2 * k + 1, np.int32), mode="same")
    return padded > 0
