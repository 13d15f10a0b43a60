"""Media corpus -> feature corpus: manifest, clips, report, and the feature spec in corpus.json."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from auxformer.runtime.features import FeatureSettings
from auxformer.train.cli import app
from auxformer.train.corpora import open_media_corpus
from auxformer.train.corpus import FeatureCorpus
from auxformer.train.prepare import prepare

from .media_factory import make_clip


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_prepare_writes_usable_clips_and_reports_every_clip(tmp_path):
    media = tmp_path / "media"
    make_clip(media / "s1_a.mp4", seconds=0.5, size=96, seed=1)
    make_clip(media / "s2_b.mp4", seconds=0.5, size=96, seed=2, with_audio=False)
    make_clip(media / "s3_c.mp4", seconds=0.5, size=96, seed=3, with_face=False, silent=True)
    (media / "s4_d.mp4").write_bytes(b"\0" * 1000)
    (tmp_path / "list.csv").write_text(
        "path,label,speaker\nmedia/s1_a.mp4,happy,s1\nmedia/s2_b.mp4,sad,s2\nmedia/s3_c.mp4,sad,s3\nmedia/s4_d.mp4,happy,s4\n"
    )
    settings = FeatureSettings(video_embedder="pixels", pixels_size=32)
    summary = prepare(
        open_media_corpus(tmp_path / "list.csv"), tmp_path / "features", settings, workers=1, progress=False
    )

    assert (summary.clips, summary.written) == (4, 2)
    assert summary.counts == {"ok": 1, "no_audio": 1, "empty": 1, "failed": 1}
    corpus = FeatureCorpus.open(tmp_path / "features")
    assert [e.clip_id for e in corpus] == ["media/s1_a.mp4", "media/s2_b.mp4"]
    assert [e.extra["status"] for e in corpus] == ["ok", "no_audio"]
    clip = corpus.load(corpus.entries[1])
    assert clip.video.shape[1] == 32 * 32 and not clip.has_audio and clip.has_video

    meta = json.loads((tmp_path / "features" / "corpus.json").read_text())
    assert meta["video_embedder"] == "pixels" and meta["video_dim"] == 1024 and meta["audio_dim"] == 130
    assert "ComParE_2016" in meta["audio_features"]
    assert FeatureSettings.from_dict(meta["feature_settings"]) == settings
    assert meta["extraction"]["counts"]["failed"] == 1 and meta["labels"] == ["happy", "sad"]

    report = {r["clip_id"]: r for r in _rows(tmp_path / "features" / "prepare_report.csv")}
    assert report["media/s4_d.mp4"]["status"] == "failed" and report["media/s4_d.mp4"]["reason"]
    assert report["media/s3_c.mp4"]["status"] == "empty" and "silent" in report["media/s3_c.mp4"]["reason"]


def test_prepare_command_on_a_cremad_layout_with_vote_labels(tmp_path, cremad_meta):
    root = tmp_path / "CREMA-D"
    # 1001_IEO_HAP_LO: intended happy, audio-visual vote happy; 1001_IEO_NEU_XX: neutral
    for i, name in enumerate(["1001_IEO_HAP_LO", "1001_IEO_NEU_XX", "1002_DFA_ANG_XX"]):
        make_clip(root / "VideoFlash" / f"{name}.flv", seconds=0.5, size=96, seed=i)
    (root / "processedResults").mkdir()
    for table in ("summaryTable.csv", "tabulatedVotes.csv"):
        shutil.copy(cremad_meta / table, root / "processedResults" / table)
    out = tmp_path / "features"
    args = ["prepare", str(root), "--out", str(out), "--labels-from", "audiovisual", "--workers", "1", "--no-cache"]
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "face detection rate" in result.output
    corpus = FeatureCorpus.open(out)
    assert {e.clip_id: (e.label, e.speaker) for e in corpus} == {
        "1001_IEO_HAP_LO": ("happy", "1001"),
        "1001_IEO_NEU_XX": ("neutral", "1001"),
        "1002_DFA_ANG_XX": ("anger", "1002"),
    }
    assert corpus.labels == ["anger", "disgust", "fear", "happy", "neutral", "sad"]
    assert corpus.metadata["source"]["labels_from"] == "audiovisual"
    assert all(np.isfinite(corpus.load(e).audio).all() for e in corpus)


def test_prepare_command_rejects_options_of_other_corpora(tmp_path):
    (tmp_path / "happy").mkdir()
    make_clip(tmp_path / "happy" / "x.wav", seconds=0.3)
    result = CliRunner().invoke(app, ["prepare", str(tmp_path), "--out", str(tmp_path / "f"), "--split", "session:1"])
    assert result.exit_code != 0 and "do not apply to folder corpora" in result.output


@pytest.mark.parametrize("bad", [["--embedder", "resnet"], ["--long-clips", "split"]])
def test_prepare_command_rejects_bad_settings(tmp_path, bad):
    result = CliRunner().invoke(app, ["prepare", str(tmp_path), "--out", str(tmp_path / "f"), *bad])
    assert result.exit_code != 0


def test_prepare_cache_option_takes_a_folder(tmp_path):
    """`prepare --cache DIR` as the README writes it: features are cached there and found again;
    `--no-cache` neither reads nor writes it."""
    make_clip(tmp_path / "clips" / "happy" / "a.wav", seconds=0.3)
    cache = tmp_path / "cache"
    args = ["prepare", str(tmp_path / "clips"), "--workers", "1", "--no-progress"]
    hits = []
    for i, extra in enumerate(
        (["--cache", str(cache)], ["--cache", str(cache)], ["--no-cache", "--cache-dir", str(cache)])
    ):
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / f"f{i}"), *extra])
        assert result.exit_code == 0, result.output
        hits.append(" ".join(result.output.split()).count("1 from cache"))
    assert any(p.is_file() for p in cache.rglob("*")) and hits == [0, 1, 0]


@pytest.mark.parametrize(
    ("column", "value"), [("label", "../escape"), ("label", "a/b"), ("label", ".."), ("split", "../train")]
)
def test_prepare_refuses_labels_and_splits_that_are_paths(tmp_path, column, value):
    make_clip(tmp_path / "a.wav", seconds=0.3)
    row = {"path": "a.wav", "label": "happy", "speaker": "s1", "split": "train", column: value}
    (tmp_path / "list.csv").write_text("path,label,speaker,split\n" + ",".join(row.values()) + "\n")
    out = tmp_path / "features"
    result = CliRunner().invoke(app, ["prepare", str(tmp_path / "list.csv"), "--out", str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert repr(value) in " ".join(result.output.split()) and not out.exists()
