"""The Profile (min/opt/max shapes): which clips and batches it accepts, padding up to its minimum, how the
manifest carries it, and its derivation from the training clips' length statistics, with overrides."""

from __future__ import annotations

import json

import numpy as np
import pytest

from auxformer.export.shapes import ProfileOverrides, profile_from_stats
from auxformer.runtime.manifest import FeatureSpec, Manifest, ManifestError, ModelRecord, PredictionSpec
from auxformer.runtime.profile import Profile, ProfileError, Range, batch_shape

ENGINE = Profile(batch=Range(2, 4, 8), audio_len=Range(4, 64, 100), video_len=Range(3, 20, 50))

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


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        ({"audio_len": 100, "video_len": 50}, None),  # a clip at the maxima fits
        ({"batch": 8, "audio_len": 1, "video_len": 1}, None),  # below the minima: `fit` pads it up
        ({"audio_len": 101, "video_len": 10}, "audio has 101 frames, the engine takes at most 100"),
        ({"audio_len": 10, "video_len": 51}, "video has 51 frames, the engine takes at most 50"),
        ({"batch": 9, "audio_len": 10, "video_len": 10}, "a batch of 9 clips, the engine takes at most 8"),
    ],
)
def test_accepts_says_why_a_shape_does_not_fit(shape, reason):
    got = ENGINE.accepts(**shape)
    assert got is None if reason is None else reason in got


def test_fit_pads_a_batch_up_to_the_minimum_with_masked_padding():
    feeds = {
        "audio": np.ones((1, 2, 130), np.float32),
        "audio_mask": np.ones((1, 2), bool),
        "video": np.ones((1, 1, 16), np.float32),
        "video_mask": np.ones((1, 1), bool),
    }
    fitted = ENGINE.fit(feeds)
    assert batch_shape(fitted) == {"batch": 2, "audio_len": 4, "video_len": 3}
    assert fitted["audio"].shape == (2, 4, 130) and fitted["video_mask"].shape == (2, 3)
    assert fitted["audio_mask"].sum() == 2 and fitted["video_mask"].sum() == 1  # padding is masked
    assert ENGINE.accepts(**batch_shape(fitted)) is None


def _manifest_json(shapes) -> str:
    manifest = Manifest(
        labels=["a", "b"],
        features=FeatureSpec(audio_dim=130, video_dim=16),
        model=ModelRecord("auxformer", {}),
        heads=["av"],
        prediction=PredictionSpec("mean_logits", {"av": ("audio", "video")}),
    )
    return json.dumps({**json.loads(manifest.to_json()), "shapes": shapes})


def test_the_manifest_carries_a_profile_under_shapes():
    manifest = Manifest.from_json(_manifest_json(ENGINE.to_dict()))
    assert manifest.shapes == ENGINE
    assert json.loads(manifest.to_json())["shapes"] == ENGINE.to_dict()  # the same JSON layout back
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert Manifest.from_json(_manifest_json({})).shapes is None  # not stated: any shape
    assert Manifest.from_json(_manifest_json(None)).shapes is None


@pytest.mark.parametrize(
    "shapes",
    [
        {"batch": {"min": 1, "opt": 4, "max": 8}},  # axes missing
        {**ENGINE.to_dict(), "batch": {"min": 1, "max": 8}},  # no opt
        {**ENGINE.to_dict(), "audio_len": {"min": 1, "opt": 200, "max": 100}},  # opt above max
        {**ENGINE.to_dict(), "video_len": {"min": 1, "opt": "20", "max": 50}},  # not a number
        {**ENGINE.to_dict(), "video_len": [1, 20, 50]},
        [1, 2, 3],
    ],
)
def test_a_malformed_profile_in_the_manifest_is_refused(shapes):
    with pytest.raises(ManifestError, match="malformed shapes"):
        Manifest.from_json(_manifest_json(shapes), "model.plan.json")
