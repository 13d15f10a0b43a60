from __future__ import annotations

import pytest

from auxformer.train.corpus import CorpusEntry, CorpusError
from auxformer.train.splits import PARTITIONS, speaker_split


def _entries(speakers: int = 91, per_speaker: int = 5, split=None):
    return [
        CorpusEntry(f"s{s}_{i}", f"s{s}", "happy", f"{s}_{i}.npz", split)
        for s in range(speakers)
        for i in range(per_speaker)
    ]


def test_no_speaker_in_two_partitions_and_fractions():
    parts = speaker_split(_entries(), seed=3)
    speakers = {p: {e.speaker for e in parts[p]} for p in PARTITIONS}
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & speakers["test"]
    assert sum(len(s) for s in speakers.values()) == 91
    assert [len(speakers[p]) for p in PARTITIONS] == [64, 14, 13]  # 70/15/15 of 91 speakers


def test_split_depends_on_seed_only():
    a, b, c = (speaker_split(_entries(), seed=s) for s in (1, 1, 2))
    ids = lambda parts: {p: [e.clip_id for e in parts[p]] for p in PARTITIONS}  # noqa: E731
    assert ids(a) == ids(b)
    assert ids(a) != ids(c)


def test_explicit_split_column_is_honoured():
    entries = _entries(6, 2)
    for e in entries:
        e.split = {"s0": "test", "s1": "dev"}.get(e.speaker, "train")
    parts = speaker_split(entries, seed=0)
    assert {e.speaker for e in parts["test"]} == {"s0"}
    assert {e.speaker for e in parts["dev"]} == {"s1"}


def test_bad_split_values_and_tiny_corpora_are_refused():
    entries = _entries(6, 1, split="validation")
    with pytest.raises(CorpusError, match="split column"):
        speaker_split(entries, seed=0)
    with pytest.raises(CorpusError, match=">= 3 speakers"):
        speaker_split(_entries(2, 3), seed=0)
