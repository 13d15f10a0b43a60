from __future__ import annotations

import numpy as np
import pytest

from auxformer.runtime.contracts import ClipFeatures, FeatureError
from auxformer.train.corpus import CorpusError, CorpusWriter, FeatureCorpus


def _clip(i: int, ta: int = 7, tv: int = 3) -> ClipFeatures:
    rng = np.random.default_rng(i)
    return ClipFeatures(
        f"c{i}",
        rng.standard_normal((ta, 130)),
        np.ones(ta, bool),
        rng.standard_normal((tv, 4)),
        np.array([True, False, True][:tv]),
        label="sad" if i % 2 else "happy",
        speaker=f"s{i % 3}",
    )


def test_roundtrip(tmp_path):
    with CorpusWriter(tmp_path, labels=["sad", "happy"], video_embedder="test") as out:
        for i in range(4):
            out.add(_clip(i), split="train" if i else "test", source=f"file{i}.mp4")
    corpus = FeatureCorpus.open(tmp_path)
    assert len(corpus) == 4 and corpus.labels == ["sad", "happy"] and corpus.video_dim == 4
    entry = corpus.entries[1]
    assert entry.split == "train" and entry.extra["source"] == "file1.mp4"
    loaded, original = corpus.load(entry), _clip(1)
    np.testing.assert_array_equal(loaded.audio, original.audio)
    np.testing.assert_array_equal(loaded.video_mask, original.video_mask)
    assert loaded.label == "sad" and loaded.speaker == "s1"


def test_interrupted_write_leaves_no_manifest(tmp_path):
    with pytest.raises(RuntimeError), CorpusWriter(tmp_path) as out:
        out.add(_clip(0))
        raise RuntimeError("killed")
    with pytest.raises(CorpusError, match=r"manifest\.csv is missing"):
        FeatureCorpus.open(tmp_path)
    assert not list(tmp_path.rglob("*.tmp"))


def test_contract_violations_are_reported():
    with pytest.raises(FeatureError, match="audio must be"):
        ClipFeatures("x", np.zeros((3, 12)), np.ones(3, bool), np.zeros((2, 4)), np.ones(2, bool))
    with pytest.raises(FeatureError, match="video_mask"):
        ClipFeatures("x", np.zeros((3, 130)), np.ones(3, bool), np.zeros((2, 4)), np.ones(5, bool))
    bad = np.zeros((2, 4))
    bad[0, 0] = np.nan
    with pytest.raises(FeatureError, match="non-finite"):
        ClipFeatures("x", np.zeros((3, 130)), np.ones(3, bool), bad, np.ones(2, bool))
    # NaN on a frame marked invalid is fine: masks say what counts
    ClipFeatures("x", np.zeros((3, 130)), np.ones(3, bool), bad, np.array([False, True]))


def test_undeclared_label_is_refused(tmp_path):
    with CorpusWriter(tmp_path, labels=["sad"]) as out:
        out.add(_clip(0))  # "happy"
    with pytest.raises(CorpusError, match="not among the declared"):
        _ = FeatureCorpus.open(tmp_path).labels


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    import os

    from auxformer.common import atomic

    atomic.write_text(tmp_path / "x.json", "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_clip_ids_stay_unique_and_files_never_collide(tmp_path):
    with CorpusWriter(tmp_path) as out:
        a, b = _clip(0), _clip(2)
        a.clip_id, b.clip_id = "a/b_c", "a_b/c"  # the same safe file name
        out.add(a, source="x.mp4")
        out.add(b, status="our own column wins", has_audio="not from the CSV")
        with pytest.raises(CorpusError, match="appears twice"):
            out.add(a)
    corpus = FeatureCorpus.open(tmp_path)
    assert len({e.path for e in corpus.entries}) == 2
    np.testing.assert_array_equal(corpus.load(corpus.entries[1]).audio, _clip(2).audio)
    assert corpus.entries[1].extra["has_audio"] == "1"
