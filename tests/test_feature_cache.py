"""The feature cache: keyed by file content and settings; a second run extracts nothing."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from auxformer.runtime import features
from auxformer.runtime.extract_pool import extract_many
from auxformer.runtime.feature_cache import FeatureCache
from auxformer.runtime.features import FeatureSettings

from .media_factory import make_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("cache_clips")
    return [make_clip(d / f"c{i}.mp4", seconds=0.5, size=96, seed=i) for i in range(2)] + [
        make_clip(d / "voice.wav", seconds=0.5)
    ]


def _run(paths, cache_dir, settings=None):
    return list(
        extract_many([(str(p), p.stem) for p in paths], settings, workers=1, cache_dir=cache_dir, progress=False)
    )


def test_second_run_is_answered_by_the_cache_without_extracting(clips, tmp_path, monkeypatch):
    first = _run(clips, tmp_path / "cache")
    assert not any(c.info["cached"] for c in first)

    def no_extraction(*_args, **_kwargs):
        raise AssertionError("the second run must not extract")

    monkeypatch.setattr(features.FeatureExtractor, "_extract", no_extraction)
    second = _run(clips, tmp_path / "cache")
    assert all(c.info["cached"] for c in second)
    for a, b in zip(first, second, strict=True):
        assert (a.clip_id, a.status, a.reason) == (b.clip_id, b.status, b.reason)
        for name, array in a.arrays().items():
            np.testing.assert_array_equal(array, b.arrays()[name])


def test_key_follows_content_and_settings_not_the_name(clips, tmp_path):
    cache = FeatureCache(tmp_path, FeatureSettings())
    copy = shutil.copy(clips[0], tmp_path / "renamed.mp4")
    assert cache.key(copy) == cache.key(clips[0])
    assert cache.key(clips[1]) != cache.key(clips[0])
    assert FeatureCache(tmp_path, FeatureSettings(detect_every=1)).key(clips[0]) != cache.key(clips[0])
    edited = tmp_path / "edited.mp4"
    edited.write_bytes(clips[0].read_bytes() + b"\0")
    assert cache.key(edited) != cache.key(clips[0])


def test_failed_clips_are_not_cached(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 10)
    _run([broken], tmp_path / "cache")
    again = _run([broken], tmp_path / "cache")
    assert again[0].status.value == "failed" and not again[0].info.get("cached")
    assert not list((tmp_path / "cache").rglob("*.npz"))


def test_a_damaged_entry_or_a_read_only_cache_never_stops_a_batch(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", 0.5)
    cache_dir = tmp_path / "cache"
    first = list(extract_many([(str(clip), "a")], FeatureSettings(), workers=1, cache_dir=cache_dir, progress=False))
    entry = next(cache_dir.rglob("*.npz"))
    entry.write_bytes(entry.read_bytes()[:100])  # a torn zip: BadZipFile, not OSError
    again = list(extract_many([(str(clip), "a")], FeatureSettings(), workers=1, cache_dir=cache_dir, progress=False))
    assert again[0].status == first[0].status and not again[0].info["cached"]
    np.testing.assert_array_equal(again[0].audio, first[0].audio)


def test_threads_and_weight_paths_do_not_change_the_key(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", 0.5)
    assert FeatureCache(tmp_path, FeatureSettings(threads=1)).key(clip) == FeatureCache(
        tmp_path, FeatureSettings(threads=4)
    ).key(clip)
