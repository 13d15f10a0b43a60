"""Synthetic voiced speech for the raw-media demo: a harmonic source shaped by formants.

A voice (the speaker) sets pitch, vocal-tract length (formant scale), spectral tilt and breathiness.
A speaking style (the emotion's voice evidence) sets pitch level, the pitch glide inside each
syllable (rising or falling), vibrato, speaking rate, loudness and brightness. Syllables alternate
vowels, and an emphasis peak (louder, higher) marks the clip's expressive moment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# F1, F2, F3 (Hz) of a few vowels of an adult male voice
VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410]], float)
FORMANT_WIDTHS = np.array([90.0, 120.0, 160.0])
FORMANT_GAINS = np.array([1.0, 0.6, 0.3])
MAX_HARMONIC_HZ = 4000.0


@dataclass(frozen=True)
class Voice:
    f0: float = 120.0  # Hz
    formant_scale: float = 1.0  # shorter vocal tract -> higher formants
    tilt: float = 1.2  # harmonic k has amplitude k ** -tilt
    breath: float = 0.02  # aspiration noise relative to the voiced signal
    rate: float = 1.0  # the speaker's own tempo
    gain_db: float = 0.0


@dataclass(frozen=True)
class Style:
    pitch: float = 1.0  # multiplies the voice's f0
    glide: float = 0.0  # relative f0 change across each syllable (> 0 rising)
    vibrato: float = 0.0  # relative depth of a 5.5 Hz pitch wobble
    syllables_per_s: float = 4.0
    loudness_db: float = 0.0
    brightness: float = 0.0  # subtracted from the voice's tilt
    emphasis: float = 0.15  # pitch and loudness boost at the expressive moment


def random_voice(rng: np.random.Generator) -> Voice:
    female = rng.random() < 0.5
    return Voice(
        f0=float(rng.uniform(170, 230) if female else rng.uniform(95, 135)),
        formant_scale=float(rng.uniform(1.05, 1.18) if female else rng.uniform(0.92, 1.04)),
        tilt=float(rng.uniform(1.0, 1.5)),
        breath=float(rng.uniform(0.01, 0.05)),
        rate=float(rng.uniform(0.85, 1.15)),
        gain_db=float(rng.uniform(-3, 3)),
    )


def synthesize(
    voice: Voice, style: Style, seconds: float, emphasis_at: float, rng: np.random.Generator, rate: int = 16000
) -> np.ndarray:
    """Mono float32 speech of `seconds` with its expressive peak at `emphasis_at` seconds."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    lead, tail = rng.uniform(0.04, 0.12), rng.uniform(0.04, 0.1)
    syll = 1.0 / (style.syllables_per_s * voice.rate * rng.uniform(0.92, 1.08))
    onsets = np.arange(lead, max(lead + syll, seconds - tail - 0.5 * syll), syll)
    onsets = onsets + rng.uniform(-0.12, 0.12, len(onsets)) * syll
    index = np.clip(np.searchsorted(onsets, t, side="right") - 1, 0, len(onsets) - 1)
    phase = np.clip((t - onsets[index]) / (0.8 * syll), 0.0, 1.0)  # position inside a syllable
    voiced = (t >= onsets[0]) & (t - onsets[index] < 0.8 * syll) & (t < seconds - tail)
    envelope = np.sin(np.pi * phase) ** 0.6 * voiced

    peak = np.exp(-0.5 * ((t - emphasis_at) / 0.15) ** 2)
    f0 = voice.f0 * style.pitch * rng.uniform(0.95, 1.05)
    f0 = f0 * (1 + style.glide * (phase - 0.5)) * (1 - 0.06 * t / seconds)  # glide + declination
    f0 = f0 * (1 + style.vibrato * np.sin(2 * np.pi * 5.5 * t)) * (1 + style.emphasis * peak)
    theta = 2 * np.pi * np.cumsum(f0) / rate

    vowels = VOWELS[rng.integers(0, len(VOWELS), len(onsets))] * voice.formant_scale
    formants = vowels[index]  # [n, 3]
    tilt = max(0.4, voice.tilt - style.brightness)
    signal = np.zeros(n)
    for k in range(1, int(MAX_HARMONIC_HZ / f0.min()) + 1):
        freq = k * f0
        shape = (FORMANT_GAINS * np.exp(-0.5 * ((freq[:, None] - formants) / FORMANT_WIDTHS) ** 2)).sum(1)
        signal += (freq < MAX_HARMONIC_HZ) * (0.05 + shape) * k**-tilt * np.sin(k * theta)
    signal = signal / (np.abs(signal).max() + 1e-9)
    signal += voice.breath * rng.standard_normal(n)
    loud = 10 ** ((style.loudness_db + voice.gain_db) / 20) * (1 + 2 * style.emphasis * peak)
    out = 0.25 * loud * envelope * signal + 1e-3 * rng.standard_normal(n)  # room noise floor
    return np.clip(out, -1, 1).astype(np.float32)
