"""Decoding: every container the front end promises, with sample rates, frame rates and sizes."""

from __future__ import annotations

import numpy as np
import pytest

from auxformer.runtime.media.decode import MediaError, decode

from .media_factory import make_clip, make_long_audio

SECONDS, FPS, SIZE = 0.6, 25.0, 64


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".avi", ".flv"])
def test_video_containers_decode_to_16k_mono_and_timed_frames(tmp_path, suffix):
    path = make_clip(tmp_path / f"clip{suffix}", seconds=SECONDS, size=SIZE, fps=FPS, with_face=False)
    media = decode(path)
    assert media.audio_rate == 16000
    assert media.audio is not None and media.audio.dtype == np.float32 and media.audio.ndim == 1
    # encoders pad a little (AAC priming, mp3 frames): the length is right to within 0.15 s
    assert abs(len(media.audio) / 16000 - SECONDS) < 0.15
    assert len(media.frames) == round(SECONDS * FPS)
    assert all(f.shape == (SIZE, SIZE, 3) and f.dtype == np.uint8 for f in media.frames)
    assert media.fps == pytest.approx(FPS, rel=1e-3)
    assert np.all(np.diff(media.frame_times) > 0)
    assert media.has_video_stream and not media.notes


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_audio_only_files_have_audio_and_no_video_stream(tmp_path, suffix):
    media = decode(make_clip(tmp_path / f"voice{suffix}", seconds=SECONDS))
    assert len(media.audio) == pytest.approx(SECONDS * 16000, abs=2)
    assert media.frames == [] and not media.has_video_stream


def test_frames_are_downscaled_to_max_side(tmp_path):
    media = decode(make_clip(tmp_path / "big.mp4", seconds=0.2, size=192, with_face=False), max_side=96)
    assert {f.shape for f in media.frames} == {(96, 96, 3)}


def test_long_files_fail_by_declared_duration_or_are_cut(tmp_path):
    path = make_long_audio(tmp_path / "ten_minutes.wav", seconds=600)
    with pytest.raises(MediaError, match=r"600\.0 s long, more than max_seconds=60"):
        decode(path, max_seconds=60)
    media = decode(path, max_seconds=2, truncate=True)
    assert len(media.audio) == 2 * 16000
    assert any("truncated to the first 2 s" in note for note in media.notes)


# a portrait phone video: 96 wide, 128 high when shown; phones store it sideways and say how to turn it
PORTRAIT = dict(seconds=0.8, size=96, height=128)


@pytest.mark.parametrize(
    ("name", "rotation", "rotate_tag"),
    [
        ("matrix_cw.mp4", -90, False),
        ("matrix_ccw.mov", 90, False),
        ("matrix_180.mp4", 180, False),
        ("tag.mkv", -90, True),
    ],
)
def test_rotated_phone_video_decodes_upright(tmp_path, name, rotation, rotate_tag):
    upright = decode(make_clip(tmp_path / f"upright{name[-4:]}", **PORTRAIT))
    turned = decode(make_clip(tmp_path / name, rotation=rotation, rotate_tag=rotate_tag, **PORTRAIT))
    assert {f.shape for f in upright.frames} == {f.shape for f in turned.frames} == {(128, 96, 3)}
    # the same picture, not a mirror or an upside-down copy (only lossy coding differs)
    error = np.mean(
        [
            np.abs(a.rgb().astype(int) - b.rgb().astype(int)).mean()
            for a, b in zip(upright.frames, turned.frames, strict=True)
        ]
    )
    assert error < 4
