"""EmoDB: the reader (on the shared clips where they are), auto-detection, and its prepared features."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from auxformer.runtime.features import FeatureSettings
from auxformer.train.corpora import CorpusLayoutError, detect_kind, open_media_corpus
from auxformer.train.corpora.emodb import LABELS, parse_name, read_emodb
from auxformer.train.corpus import FeatureCorpus
from auxformer.train.prepare import prepare

EMODB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "emodb"
# the shared folder's README: clips per emotion over speakers 03, 08, 09, 10, 11
COUNTS = {"anger": 60, "boredom": 35, "disgust": 12, "fear": 29, "happiness": 34, "sadness": 30, "neutral": 43}


@pytest.fixture(scope="module")
def emodb() -> Path:
    if not (EMODB / "wav").is_dir():
        pytest.skip(f"EmoDB clips not found at {EMODB}")
    return EMODB


def test_clip_names():
    clip = parse_name("03a01Fa")
    assert (clip.speaker, clip.sentence, clip.emotion, clip.version) == ("03", "a01", "happiness", "a")
    assert parse_name("16b10Wb").emotion == "anger" and parse_name("11a04Ld").emotion == "boredom"
    assert [parse_name(f"08a01{c}a").emotion for c in "WLEAFTN"] == list(LABELS)
    for bad in ("03a01Xa", "3a01Fa", "03c01Fa", "03a01F", "readme"):
        with pytest.raises(ValueError, match="not an EmoDB clip name"):
            parse_name(bad)


def test_layout_is_detected_from_the_clip_names(tmp_path):
    (tmp_path / "wav").mkdir()
    for name in ("03a01Fa", "08b02Wc", "10a05Nb", "not_a_clip"):
        (tmp_path / "wav" / f"{name}.wav").write_bytes(b"placeholder")
    assert detect_kind(tmp_path) == "emodb"
    corpus = open_media_corpus(tmp_path)
    assert [i.clip_id for i in corpus.items] == ["03a01Fa", "08b02Wc", "10a05Nb"]
    assert [(i.label, i.speaker) for i in corpus.items] == [("happiness", "03"), ("anger", "08"), ("neutral", "10")]
    assert corpus.items[1].extra == {"sentence": "b02", "version": "c", "sex": "f"}
    assert any("without an EmoDB name" in n for n in corpus.notes)
    # the clips directly in the folder work too; a folder of label folders is still a folder corpus
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "09a02Ta.wav").write_bytes(b"placeholder")
    assert detect_kind(flat) == "emodb" and open_media_corpus(flat).items[0].label == "sadness"
    (tmp_path / "labelled" / "happy").mkdir(parents=True)
    (tmp_path / "labelled" / "happy" / "03a01Fa.wav").write_bytes(b"placeholder")
    assert detect_kind(tmp_path / "labelled") == "folder"
    with pytest.raises(CorpusLayoutError, match="no EmoDB clips"):
        read_emodb(tmp_path / "labelled")


def test_reader_on_the_shared_clips(emodb):
    assert detect_kind(emodb) == "emodb"
    corpus = open_media_corpus(emodb)
    assert open_media_corpus(emodb, kind="emodb").items == corpus.items
    assert len(corpus) == 243 and corpus.labels == list(LABELS)
    assert corpus.speakers == ["03", "08", "09", "10", "11"]
    assert Counter(i.label for i in corpus.items) == COUNTS
    assert all(i.clip_id.startswith(i.speaker) and i.path.is_file() for i in corpus.items)
    assert {i.extra["sex"] for i in corpus.items if i.speaker in ("08", "09")} == {"f"}
    assert corpus.describe()["speakers"] == 5


def test_prepared_clips_have_no_video_masked_padding_and_functionals(emodb, tmp_path):
    media = open_media_corpus(emodb)
    # per speaker: its first clips, and every clip padded with digital silence among the first 30
    picked = [i for s in media.speakers for i in [x for x in media.items if x.speaker == s][:3]]
    media.items = picked
    summary = prepare(
        media, tmp_path / "features", FeatureSettings(), workers=1, progress=False, functionals=("eGeMAPSv02",)
    )
    assert summary.written == 15 and summary.counts == {"no_face": 15}
    corpus = FeatureCorpus.open(tmp_path / "features")
    assert corpus.functional_sets == {"eGeMAPSv02": 88}
    assert json.loads((tmp_path / "features" / "corpus.json").read_text())["source"]["name"] == "emodb"
    x, present = corpus.load_functionals(corpus.entries, "eGeMAPSv02")
    assert x.shape == (15, 88) and present.all() and np.isfinite(x).all() and x.std(0).max() > 0
    for entry in corpus.entries:
        clip = corpus.load(entry)
        assert not clip.has_video and clip.has_audio
        assert entry.extra["has_video"] == "0"
