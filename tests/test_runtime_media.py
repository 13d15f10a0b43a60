"""The runtime on real media files through the media front end: masks for an audio-only file and a
video without a face, `auxformer-infer` on a folder with bad files, and front-end settings checked
against the model. Runs where the front end (`auxformer.runtime.features`) is installed."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("auxformer.runtime.features")

import numpy as np
from typer.testing import CliRunner

from auxformer.runtime import ManifestError, Session, Status
from auxformer.runtime.cli import app
from auxformer.runtime.features import FeatureSettings

from .export_support import media_model, tiny_export
from .media_factory import make_clip, make_not_media

BAD = ("notes.mp4", "noise.mp4", "zero.mp4")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The tiny model, its manifest saying it was trained on these front-end settings."""
    return media_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    make_clip(root / "good.mp4", seconds=0.8)
    make_clip(root / "sub" / "other.mkv", seconds=0.6, seed=1)
    make_clip(root / "voice.wav", seconds=0.6)  # audio only
    make_clip(root / "empty_room.mp4", seconds=0.6, with_face=False)  # video, no one in it
    make_not_media(root / "notes.mp4")
    (root / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    (root / "zero.mp4").write_bytes(b"")
    return root


def _rows(out) -> dict[str, dict]:
    lines = (out / "predictions.jsonl").read_text().splitlines()
    return {row["clip_id"]: row for row in map(json.loads, lines)}


def test_audio_only_and_faceless_files_become_missing_modalities(model, clips):
    session = Session.load(model, device="cpu")
    good, voice, room = session.predict([clips / "good.mp4", clips / "voice.wav", clips / "empty_room.mp4"])
    assert good.status is Status.OK and good.present == {"audio": True, "video": True}
    assert voice.status is Status.NO_FACE and voice.present["video"] is False and voice.heads["video"] is None
    assert room.status is Status.NO_FACE and room.present == {"audio": True, "video": False}
    assert room.heads["video"] is None and room.heads["audio"] is not None and room.label is not None
    assert good.timing["extract"] > 0 and good.source == str(clips / "good.mp4")


def test_cli_predicts_a_folder_with_bad_files(model, clips, tmp_path):
    args = [
        str(clips),
        "--model",
        str(model),
        "--workers",
        "1",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-progress",
    ]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "first")])
    assert result.exit_code == 0, result.output
    rows = {
        r["clip_id"]: r for r in map(json.loads, (tmp_path / "first" / "predictions.jsonl").read_text().splitlines())
    }
    assert set(rows) == {
        "good.mp4",
        "sub/other.mkv",
        "voice.wav",
        "empty_room.mp4",
        "notes.mp4",
        "noise.mp4",
        "zero.mp4",
    }
    for bad in BAD:
        assert rows[bad]["status"] == "failed" and rows[bad]["reason"] and rows[bad]["label"] is None
    for ok in ("good.mp4", "sub/other.mkv", "voice.wav", "empty_room.mp4"):
        assert rows[ok]["label"] is not None
    assert rows["voice.wav"]["present"] == {"audio": True, "video": False}

    again = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "second")])
    assert again.exit_code == 0, again.output
    second = {
        r["clip_id"]: r for r in map(json.loads, (tmp_path / "second" / "predictions.jsonl").read_text().splitlines())
    }
    assert all(second[k]["cached"] for k in ("good.mp4", "voice.wav"))  # features from the cache this time
    assert {k: r["label"] for k, r in second.items()} == {k: r["label"] for k, r in rows.items()}


def test_front_end_settings_must_make_the_models_features(model, clips, tmp_path):
    with pytest.raises(ManifestError, match="makes 64-dim video features, the model expects 16"):
        Session.load(model, features=FeatureSettings(video_embedder="pixels", pixels_size=8))
    # a model trained on features the front end did not make: media files are refused before any work
    result = CliRunner().invoke(
        app, [str(clips), "--model", str(tiny_export().path), "--out", str(tmp_path), "--no-progress"]
    )
    assert result.exit_code == 2 and "were not made by the media front end" in " ".join(result.output.split())
