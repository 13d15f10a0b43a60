"""Optimization-profile shapes from the training clips' length statistics, with overrides."""

from __future__ import annotations

import pytest

from auxformer.export.shapes import Profile, ProfileError, ProfileOverrides, Range, profile_from_stats

STATS = {
    "audio": {"min": 90, "p50": 109, "p95": 128, "max": 130},
    "video": {"min": 27, "p50": 33, "p95": 39, "max": 39},
}


def test_profile_from_stats():
    profile = profile_from_stats(STATS)
    assert profile.batch == Range(1, 8, 32)
    assert profile.audio_len == Range(1, 109, 144)  # the longest clip, rounded up to 16
    assert profile.video_len == Range(1, 33, 48)
    assert Profile.from_dict(profile.to_dict()) == profile


def test_overrides():
    profile = profile_from_stats(STATS, ProfileOverrides(max_batch=4, max_audio_len=1000, opt_video_len=20))
    assert profile.batch == Range(1, 4, 4)  # opt never above max
    assert profile.audio_len == Range(1, 109, 1000)
    assert profile.video_len == Range(1, 20, 48)
    assert profile_from_stats({}, ProfileOverrides(max_audio_len=64, max_video_len=32)).audio_len == Range(1, 64, 64)


def test_bad_profiles_are_refused():
    with pytest.raises(ProfileError, match="--max-video-len"):
        profile_from_stats({"audio": STATS["audio"]})
    with pytest.raises(ProfileError, match="min <= opt <= max"):
        profile_from_stats(STATS, ProfileOverrides(opt_batch=64))


def test_input_shapes():
    shapes = profile_from_stats(STATS).input_shapes(video_dim=512)
    assert shapes["video"] == ((1, 1, 512), (8, 33, 512), (32, 48, 512))
    assert shapes["audio_mask"] == ((1, 1), (8, 109), (32, 144))
