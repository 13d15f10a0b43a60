"""Bad input never stops a batch: every clip gets a status and a reason, absent modalities are masked."""

from __future__ import annotations

import numpy as np
import pytest

from auxformer.common.parallel import ordered_map
from auxformer.runtime.contracts import Status
from auxformer.runtime.extract_pool import extract_many
from auxformer.runtime.features import FeatureExtractor, FeatureSettings

from .media_factory import make_clip, make_long_audio, make_not_media, truncate_copy
from .pool_jobs import crashed, square_or_die


@pytest.fixture(scope="module")
def bad_batch(tmp_path_factory):
    """(name, path, expected status, words the reason must contain), in batch order."""
    d = tmp_path_factory.mktemp("bad")
    good = make_clip(d / "good.mp4", seconds=0.6, size=96)
    index_last = make_clip(d / "index_last.mp4", seconds=0.6, size=96, faststart=False)
    corrupt = d / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    (d / "zero.mp4").write_bytes(b"")
    return [
        ("good", good, Status.OK, ""),
        ("corrupt", corrupt, Status.FAILED, "not a readable media file"),
        ("truncated_index_last", truncate_copy(index_last, d / "cut1.mp4"), Status.FAILED, "not a readable media file"),
        ("truncated_index_first", truncate_copy(good, d / "cut2.mp4", 0.6), Status.OK, "decoding stopped early"),
        ("zero_bytes", d / "zero.mp4", Status.FAILED, "empty file (0 bytes)"),
        (
            "no_audio_stream",
            make_clip(d / "mute.mp4", seconds=0.6, size=96, with_audio=False),
            Status.NO_AUDIO,
            "no audio stream",
        ),
        ("audio_only", make_clip(d / "voice.wav", seconds=0.6), Status.NO_FACE, "no video stream"),
        (
            "no_face",
            make_clip(d / "nobody.mp4", seconds=0.6, size=96, with_face=False),
            Status.NO_FACE,
            "no face found",
        ),
        ("ten_minutes", make_long_audio(d / "long.wav", seconds=600), Status.FAILED, "600.0 s long"),
        ("not_media", make_not_media(d / "notes.mp4"), Status.FAILED, "not a readable media file"),
        ("missing", d / "gone.mp4", Status.FAILED, "cannot read the file"),
    ]


def test_every_bad_clip_gets_its_status_and_reason_and_the_batch_goes_on(bad_batch):
    jobs = [(str(path), name) for name, path, _, _ in bad_batch]
    clips = list(extract_many(jobs, workers=1, progress=False))
    assert [c.clip_id for c in clips] == [name for name, *_ in bad_batch]
    for clip, (name, _, status, words) in zip(clips, bad_batch, strict=True):
        assert clip.status is status, (name, clip.reason)
        assert words in clip.reason, (name, clip.reason)
        if not words:
            assert clip.reason == "", name
        if status is Status.FAILED:
            assert len(clip.audio_mask) == 0 and len(clip.video_mask) == 0
        # a modality that is absent is masked, and its values are zeros, never garbage
        for m in ("audio", "video"):
            mask = getattr(clip, f"{m}_mask")
            assert not getattr(clip, m)[~mask].any(), (name, m)
        assert clip.has_audio == (status in (Status.OK, Status.NO_FACE)), name
        assert clip.has_video == (status in (Status.OK, Status.NO_AUDIO)), name


def test_long_clips_can_be_truncated_instead(bad_batch):
    long_file = next(path for name, path, *_ in bad_batch if name == "ten_minutes")
    clip = FeatureExtractor(FeatureSettings(max_seconds=1.5, long_clips="truncate"))(long_file)
    assert clip.status is Status.NO_FACE and "truncated to the first 1.5 s" in clip.reason
    assert 140 <= len(clip.audio_mask) <= 150  # 1.5 s at 100 frames/s


def test_a_job_that_kills_its_worker_is_reported_and_the_rest_finish():
    results = list(ordered_map(square_or_die, [1, 2, -1, 3, 4], workers=2, crashed=crashed))
    assert results == [1, 4, "crashed on -1", 9, 16]


def test_results_waiting_behind_a_slow_job_stay_bounded(monkeypatch):
    """The window counts results held back for order, not just jobs in flight: while job 0 is slow,
    the pool must not run ahead through the whole list."""
    from concurrent.futures import ProcessPoolExecutor

    from auxformer.common import parallel

    from .pool_jobs import slow_first

    submitted = []

    class CountingPool(ProcessPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            submitted.append(args[0])
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", CountingPool)
    gen = ordered_map(slow_first, list(range(40)), workers=2, crashed=crashed)
    assert next(gen) == 0
    assert len(submitted) <= 2 * 2 + 2 + 1  # the window, plus the head's slot
    assert list(gen) == list(range(1, 40))
