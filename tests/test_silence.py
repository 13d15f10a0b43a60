"""Digital silence (a clip padded with zeros to a fixed length): its frames are masked, so the
last-valid-frame pooling picks speech, and the functionals describe the speech, not the padding."""

from __future__ import annotations

import wave

import numpy as np
import torch

from auxformer.runtime.features import FeatureExtractor
from auxformer.runtime.media.audio_features import ComParE, silent_frames
from auxformer.runtime.media.functionals import Functionals, trim_digital_silence
from auxformer.train.model import pool

RATE = 16000


def voiced(seconds: float, seed: int = 0) -> np.ndarray:
    """A vowel-like signal: a 150 Hz pulse train's harmonics with a little noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8))
    x = x + np.random.default_rng(seed).normal(0, 0.02, len(t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def padded(lead: float, speech: float, tail: float) -> np.ndarray:
    zeros = [np.zeros(int(seconds * RATE), np.float32) for seconds in (lead, tail)]
    return np.concatenate([zeros[0], voiced(speech), zeros[1]])


def test_padding_frames_are_masked_and_speech_frames_kept():
    features = ComParE()(padded(0.3, 1.0, 0.7), RATE)
    valid = np.flatnonzero(features.mask)
    # frame i sees [i*10 ms - 10 ms, i*10 ms + 70 ms): speech spans 0.3 s to 1.3 s
    assert valid[0] in range(24, 32) and valid[-1] in range(125, 132)
    assert features.mask[valid[0] : valid[-1] + 1].all()  # one run of speech
    assert (features.values[~features.mask] == 0).all()
    # unpadded, nothing is masked
    assert ComParE()(voiced(1.0), RATE).mask.all()


def test_a_gap_shorter_than_the_window_is_not_silence():
    x = voiced(1.0)
    x[8000:8400] = 0.0  # 25 ms of zeros inside speech
    assert not silent_frames(x, RATE, 95, 10 ** (-90 / 20)).any()
    x[8000:10000] = 0.0  # 0.5 s to 0.625 s: frames 51-55 see only zeros
    silent = silent_frames(x, RATE, 95, 10 ** (-90 / 20))
    assert np.flatnonzero(silent).tolist() == [51, 52, 53, 54, 55]
    # at the paper's 16 ms step frame i sees [16 (i - 1), 16 (i - 1) + 92) ms: frames 33-34 fit the gap
    silent = silent_frames(x, RATE, 60, 10 ** (-90 / 20), step_seconds=0.016)
    assert np.flatnonzero(silent).tolist() == [33, 34]


def test_last_valid_frame_pooling_picks_speech_not_padding():
    features = ComParE()(padded(0.0, 1.2, 0.8), RATE)
    h = torch.from_numpy(features.values)[None]
    picked = pool(h, torch.from_numpy(features.mask)[None], "last")[0]
    last_speech = np.flatnonzero(features.mask)[-1]
    assert last_speech < 125 < len(features.mask) - 50
    torch.testing.assert_close(picked, h[0, last_speech])
    assert float(picked.abs().sum()) > 0


def test_functionals_ignore_leading_and_trailing_padding():
    functionals = Functionals(("eGeMAPSv02",))
    speech = voiced(1.0, seed=3)
    np.testing.assert_array_equal(
        functionals(np.concatenate([np.zeros(5000, np.float32), speech, np.zeros(9000, np.float32)]), RATE)[
            "eGeMAPSv02"
        ],
        functionals(speech, RATE)["eGeMAPSv02"],
    )
    assert len(trim_digital_silence(np.zeros(100, np.float32), 1e-5)) == 0
    assert functionals(np.zeros(RATE, np.float32), RATE) == {}  # nothing to describe


def test_a_padded_wav_file_end_to_end(tmp_path):
    path = tmp_path / "padded.wav"
    pcm = (padded(0.0, 1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    clip = FeatureExtractor(functionals=("eGeMAPSv02",))(path)
    assert clip.status.value == "no_face" and clip.has_audio
    assert clip.audio_mask[:95].all() and not clip.audio_mask[-90:].any()
    assert clip.functionals["eGeMAPSv02"].shape == (88,)
