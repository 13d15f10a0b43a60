"""Corpus readers: CREMA-D on its real metadata, MSP-IMPROV's Evaluation.txt, folders and CSV lists."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from auxformer.train.corpora import CorpusLayoutError, detect_kind, open_media_corpus
from auxformer.train.corpora.cremad import LABELS, VOTE_COLUMNS, parse_name, read_cremad, read_labels, vote_label
from auxformer.train.corpora.folder import read_csv_list, read_label_folders
from auxformer.train.corpora.msp_improv import parse_evaluation, read_msp_improv

SUMMARY_COLUMN = {"voice": "VoiceVote", "face": "FaceVote", "audiovisual": "MultiModalVote"}
CODE_TO_LABEL = dict(zip(VOTE_COLUMNS, LABELS, strict=True))


def summary_table_counts(meta: Path, source: str) -> Counter[str]:
    """Clips per class that summaryTable.csv's plurality votes imply (ties such as 'A:D' excluded)."""
    with open(meta / "summaryTable.csv", newline="") as fh:
        votes = [row[SUMMARY_COLUMN[source]] for row in csv.DictReader(fh)]
    return Counter(CODE_TO_LABEL[v] for v in votes if ":" not in v)


@pytest.mark.parametrize("source", ["audiovisual", "voice", "face"])
def test_cremad_plurality_labels_match_the_summary_table(cremad_meta, source):
    labels = read_labels(cremad_meta, source, "plurality")
    assert Counter(label for label, _ in labels.values()) == summary_table_counts(cremad_meta, source)


def test_cremad_majority_and_distribution_rules(cremad_meta):
    plurality = read_labels(cremad_meta, "audiovisual", "plurality")
    majority = read_labels(cremad_meta, "audiovisual", "majority")
    distribution = read_labels(cremad_meta, "audiovisual", "distribution")
    assert len(distribution) == 7442 and len(majority) < len(plurality) < 7442
    for name, (label, shares) in majority.items():
        assert shares[LABELS.index(label)] > 0.5 and plurality[name][0] == label
    for label, shares in distribution.values():
        assert shares.sum() == pytest.approx(1.0) and shares[LABELS.index(label)] == shares.max()


def test_vote_rules_on_ties():
    tie = np.array([3, 3, 0, 0, 1, 0])
    assert vote_label(tie, "plurality") is None
    assert vote_label(tie, "majority") is None
    assert vote_label(tie, "distribution", intended="disgust") == "disgust"
    assert vote_label(tie, "distribution", intended="sad") == "anger"
    assert vote_label(np.array([0, 0, 0, 2, 1, 1]), "majority") is None  # 2/4 is not more than half
    assert vote_label(np.array([0, 0, 0, 3, 1, 1]), "majority") == "happy"


def test_cremad_reader_on_its_layout_with_placeholder_media(tmp_path, cremad_meta):
    names = ["1001_DFA_ANG_XX", "1001_IEO_HAP_LO", "1002_TIE_SAD_XX", "1091_WSI_DIS_XX"]
    (tmp_path / "VideoFlash").mkdir()
    (tmp_path / "AudioWAV").mkdir()
    (tmp_path / "processedResults").mkdir()
    for name in names:
        (tmp_path / "VideoFlash" / f"{name}.flv").write_bytes(b"placeholder")
        (tmp_path / "AudioWAV" / f"{name}.wav").write_bytes(b"placeholder")
    (tmp_path / "VideoFlash" / "README.flv").write_bytes(b"not a clip name")
    for table in ("summaryTable.csv", "tabulatedVotes.csv"):
        shutil.copy(cremad_meta / table, tmp_path / "processedResults" / table)

    assert detect_kind(tmp_path) == "cremad"
    intended = open_media_corpus(tmp_path)
    assert [i.clip_id for i in intended.items] == sorted(names)
    assert [i.label for i in intended.items] == ["anger", "happy", "sad", "disgust"]
    assert [i.speaker for i in intended.items] == ["1001", "1001", "1002", "1091"]
    assert all(i.path.suffix == ".flv" for i in intended.items) and intended.labels == list(LABELS)
    assert any("without a CREMA-D name" in n for n in intended.notes)

    audio = read_cremad(tmp_path, media="audio")
    assert {i.path.suffix for i in audio.items} == {".wav"}

    # 1001_IEO_HAP_LO: intended happy, its voice was voted neutral (summary table row 2)
    voice = read_cremad(tmp_path, labels_from="voice", rule="plurality")
    assert {i.clip_id: i.label for i in voice.items}["1001_IEO_HAP_LO"] == "neutral"
    extra = {i.clip_id: i.extra for i in voice.items}["1001_IEO_HAP_LO"]
    assert (extra["VoiceVote"], extra["FaceVote"], extra["MultiModalLevel"]) == ("N", "H", "57.38")
    soft = read_cremad(tmp_path, labels_from="face", rule="distribution")
    shares = [float(soft.items[0].extra[f"p_{c}"]) for c in LABELS]
    assert sum(shares) == pytest.approx(1.0, abs=1e-3)


def test_cremad_names():
    clip = parse_name("1042_ITS_FEA_HI")
    assert (clip.actor, clip.sentence, clip.emotion, clip.level) == ("1042", "ITS", "fear", "HI")
    with pytest.raises(ValueError):
        parse_name("1042_ITS_XYZ_HI")


EVALUATION = """\
UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:4.000000; V:2.000000; D:3.500000 ; N:3.000000;
rater01; Angry; Frustrated,; A:4; V:2; D:4
rater02; Angry; ; A:4; V:2; D:3
rater03; Neutral; ; A:3; V:3; D:3
rater02; Happy; duplicate rater: counted once

UTD-IMPROV-S02H-M03-R-MM03.avi; H; A:3.000000; V:4.000000; D:3.000000 ; N:4.000000;
rater01; Happy; ; A:3; V:4; D:3
rater04; Sad; ; A:2; V:2; D:2

UTD-IMPROV-S03S-F05-T-FF05.avi; O; A:2.000000; V:2.000000; D:2.000000 ; N:4.000000;
rater01; Other; Bored,; A:2; V:2; D:2
rater05; Other; ; A:2; V:2; D:2

UTD-IMPROV-S04N-M06-S-FM06.avi; N; A:2.000000; V:3.000000; D:3.000000 ; N:4.000000;
rater02; Neutral; ; A:2; V:3; D:3
rater03; Neutral; ; A:2; V:3; D:3
rater04; Sad; ; A:2; V:3; D:3
"""


def _msp_root(tmp_path: Path) -> Path:
    (tmp_path / "Evaluation.txt").write_text(EVALUATION)
    for name, session in (
        ("S01A-F01-P-FM01", 1),
        ("S02H-M03-R-MM03", 3),
        ("S03S-F05-T-FF05", 5),
        ("S04N-M06-S-FM06", 6),
    ):
        folder = tmp_path / f"session{session}" / name[:4] / name.split("-")[2]
        folder.mkdir(parents=True)
        (folder / f"MSP-IMPROV-{name}.avi").write_bytes(b"placeholder")
        (folder / f"MSP-IMPROV-{name}.wav").write_bytes(b"placeholder")
    return tmp_path


def test_msp_improv_plurality_labels_speakers_and_sessions(tmp_path):
    root = _msp_root(tmp_path)
    evaluations = parse_evaluation(root / "Evaluation.txt")
    assert evaluations["S01A-F01-P-FM01"].ratings == {"rater01": "A", "rater02": "A", "rater03": "N"}
    corpus = open_media_corpus(root)
    assert corpus.name == "msp-improv" and corpus.labels == ["angry", "happy", "neutral", "sad"]
    # S02H: a 1-1 tie, S03S: "other": both left out
    assert {i.clip_id: (i.label, i.speaker) for i in corpus.items} == {
        "S01A-F01-P-FM01": ("angry", "F01"),
        "S04N-M06-S-FM06": ("neutral", "M06"),
    }
    assert all(i.path.suffix == ".avi" and i.split is None for i in corpus.items)
    assert any("tie" in n for n in corpus.notes)
    consensus = read_msp_improv(root, labels_from="consensus")
    assert {i.clip_id: i.label for i in consensus.items}["S02H-M03-R-MM03"] == "happy"
    by_session = read_msp_improv(root, split="session:6", labels_from="consensus")
    assert {i.clip_id: i.split for i in by_session.items} == {
        "S01A-F01-P-FM01": "dev",  # the session after 6 wraps to 1
        "S02H-M03-R-MM03": "train",
        "S04N-M06-S-FM06": "test",
    }
    with pytest.raises(ValueError, match="session:N"):
        read_msp_improv(root, split="session:7")


def test_label_folders_with_and_without_speakers(tmp_path):
    for label, names in {"happy": ["a01_x.mp4", "a02_y.mp4"], "sad": ["a01_z.mkv", "notes.txt"]}.items():
        (tmp_path / label).mkdir()
        for name in names:
            (tmp_path / label / name).write_bytes(b"placeholder")
    corpus = read_label_folders(tmp_path, speaker_pattern=r"^(a\d\d)_")
    assert [(i.clip_id, i.label, i.speaker) for i in corpus.items] == [
        ("happy/a01_x.mp4", "happy", "a01"),
        ("happy/a02_y.mp4", "happy", "a02"),
        ("sad/a01_z.mkv", "sad", "a01"),
    ]
    plain = open_media_corpus(tmp_path, kind="folder")
    assert plain.items[0].speaker == plain.items[0].clip_id and "every clip counts as its own speaker" in plain.notes[0]
    with pytest.raises(ValueError, match="rule do not apply to folder corpora"):
        open_media_corpus(tmp_path, rule="majority")


def test_csv_lists(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "one.mp4").write_bytes(b"placeholder")
    listing = tmp_path / "list.csv"
    listing.write_text("path,label,speaker,split,take\nclips/one.mp4,angry,s1,train,2\nclips/two.mp4,sad,s2,test,1\n")
    corpus = open_media_corpus(listing)
    assert [(i.clip_id, i.label, i.speaker, i.split, i.extra) for i in corpus.items] == [
        ("clips/one.mp4", "angry", "s1", "train", {"take": "2"}),
        ("clips/two.mp4", "sad", "s2", "test", {"take": "1"}),
    ]
    assert corpus.items[0].path == tmp_path / "clips" / "one.mp4"
    assert any("1 listed files do not exist" in n for n in corpus.notes)
    bad = tmp_path / "bad.csv"
    bad.write_text("file,emotion\nx.mp4,sad\n")
    with pytest.raises(CorpusLayoutError, match="path and label"):
        read_csv_list(bad)


def test_csv_rows_without_a_label_are_left_out_with_a_note(tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\na.mp4,sad\nb.mp4,\nc.mp4, \n")
    corpus = read_csv_list(listing)
    assert [i.clip_id for i in corpus.items] == ["a.mp4"]
    assert any("2 rows without a label were left out" in n for n in corpus.notes)
