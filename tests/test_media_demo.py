"""The raw-media demo generator: real mp4 clips with voice and face, reused between runs."""

from __future__ import annotations

import csv

import av
import numpy as np

from auxformer.runtime.features import FeatureSettings
from auxformer.train.demo_corpus import AUDIO_GROUP, VIDEO_GROUP
from auxformer.train.media_demo import FACE_EXPRESSIONS, VOICE_STYLES, MediaDemoSpec, plan_clips, run_media_demo

TINY = MediaDemoSpec(speakers=3, clips_per_class=1, min_seconds=0.6, max_seconds=0.8)


def test_demo_clips_are_real_mp4s_and_the_front_end_finds_their_faces(tmp_path):
    corpus, summary = run_media_demo(tmp_path, TINY, workers=1, progress=False)
    rows = list(csv.DictReader((tmp_path / "demo_media" / "labels.csv").read_text().splitlines()))
    assert len(rows) == len(corpus) == 18 and summary.counts == {"ok": 18}
    assert {r["speaker"] for r in rows} == {"spk00", "spk01", "spk02"}
    assert all(abs(float(r["offset_s"])) <= TINY.max_offset_s for r in rows)
    with av.open(str(tmp_path / "demo_media" / rows[0]["path"])) as container:
        assert {s.type for s in container.streams} == {"audio", "video"}
        assert container.streams.video[0].codec_context.name == "h264"
    assert summary.face_rate >= 0.95
    assert corpus.metadata["video_embedder"] == "expression" and corpus.video_dim == 128
    assert corpus.metadata["video_weights"] == FeatureSettings().video_weights

    clip_file = tmp_path / "demo_media" / rows[0]["path"]
    stamp = clip_file.stat().st_mtime_ns
    _, again = run_media_demo(tmp_path, TINY, workers=1, progress=False)
    assert clip_file.stat().st_mtime_ns == stamp  # clips kept
    assert again.cached == 18  # features from the cache


def test_each_class_is_a_unique_pair_of_voice_and_face_evidence():
    pairs = {(AUDIO_GROUP[c], VIDEO_GROUP[c]) for c in AUDIO_GROUP}
    assert len(pairs) == 6 and set(VOICE_STYLES) == set(FACE_EXPRESSIONS) == {0, 1, 2}
    plans = plan_clips(MediaDemoSpec(speakers=2, clips_per_class=2))
    assert len({p.look for p in plans}) == 2 and len({p.voice for p in plans}) == 2  # one per speaker
    offsets = np.array([p.offset for p in plans])
    assert (np.abs(offsets) <= 0.15).all() and offsets.std() > 0.03
