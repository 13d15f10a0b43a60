"""The bad-input matrix, end to end: `auxformer-infer` on a folder holding one awkward input and a good
clip exits 0 without a traceback, gives every input exactly one row with a status and a reason, and
predicts the good clip."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from auxformer.runtime.cli import app

from .export_support import media_model
from .media_factory import make_clip, make_not_media, truncate_copy
from .runtime_support import feature_clip


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _random_bytes(path: Path) -> list[Path]:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    return [path]


def _npz(path: Path, **arrays: np.ndarray) -> list[Path]:
    np.savez(path, **arrays)
    return [path]


def _clip_arrays(**changes: object) -> dict[str, np.ndarray]:
    return {**feature_clip("x", 50, 15).arrays(), **changes}


def _symlink_loop(folder: Path) -> list[Path]:
    (folder / "a.mp4").symlink_to(folder / "b.mp4")
    (folder / "b.mp4").symlink_to(folder / "a.mp4")
    return [folder / "a.mp4", folder / "b.mp4"]


def _directory(path: Path) -> list[Path]:
    path.mkdir()
    (path / "inside.txt").write_text("a folder named like a video")
    return [path]


def _image(path: Path) -> list[Path]:
    import cv2

    cv2.imwrite(str(path), np.full((32, 32, 3), 128, np.uint8))
    return [path]


@dataclass
class Case:
    name: str
    make: Callable[[Path, Path], list[Path]]  # (folder, good clip) -> the awkward inputs made in folder
    status: str  # what each awkward input's row says
    words: str = ""  # the reason says this (any reason at all where empty)
    not_words: str = ""  # and never this
    named: bool = False  # the inputs are named on the command line, not found in the folder


CASES = [
    Case("empty file", lambda d, good: [_touch(d / "empty.mp4")], "failed", "empty file (0 bytes)"),
    Case("random bytes .mp4", lambda d, good: _random_bytes(d / "noise.mp4"), "failed", "not a readable media file"),
    Case(
        "random bytes .npz",
        lambda d, good: _random_bytes(d / "noise.npz"),
        "failed",
        "not a feature file",
        not_words="pickle",
    ),
    Case(
        "truncated mp4",
        lambda d, good: [truncate_copy(good, d / "cut.mp4", 0.6)],
        "ok",
        "decoding stopped early",
    ),
    Case("text named .wav", lambda d, good: [make_not_media(d / "notes.wav")], "failed", "not a readable media file"),
    Case(
        "npz with wrong dims",
        lambda d, good: _npz(d / "dims.npz", **_clip_arrays(video=np.zeros((15, 8), np.float32))),
        "failed",
        "expects 16",
    ),
    Case(
        "npz with integer arrays",
        lambda d, good: _npz(d / "ints.npz", **{k: v.astype(np.int64) for k, v in _clip_arrays().items()}),
        "failed",
    ),
    Case(
        "zero-length npz arrays",
        lambda d, good: _npz(
            d / "nothing.npz",
            **_clip_arrays(
                audio=np.zeros((0, 130), np.float32),
                audio_mask=np.zeros(0, bool),
                video=np.zeros((0, 16), np.float32),
                video_mask=np.zeros(0, bool),
            ),
        ),
        "empty",
        "nothing to predict from",
    ),
    Case("directory named x.mp4", lambda d, good: _directory(d / "x.mp4"), "failed"),
    Case("symlink loop", lambda d, good: _symlink_loop(d), "failed"),
    Case("image .jpg", lambda d, good: _image(d / "photo.jpg"), "failed"),
    Case(
        "missing file named",
        lambda d, good: [d.parent / "gone.mp4"],
        "failed",
        named=True,
    ),
]


@pytest.fixture(scope="module")
def setting(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The model that runs on media, a good clip, and a feature cache shared by the cases (the good
    clip is extracted once)."""
    root = tmp_path_factory.mktemp("matrix")
    return media_model(root), make_clip(root / "good.mp4", seconds=0.6), root / "cache"


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, id=case.name) for case in CASES],
)
def test_one_awkward_input_beside_a_good_clip(setting, tmp_path, case):
    model, good_source, cache = setting
    folder = tmp_path / "clips"
    folder.mkdir()
    good = folder / "good.mp4"
    os.link(good_source, good)  # same content: its features come from the cache after the first case
    awkward = case.make(folder, good)
    inputs = [str(folder), *(map(str, awkward) if case.named else [])]
    out = tmp_path / "out"
    args = [*inputs, "--model", str(model), "--out", str(out), "--workers", "1", "--cache-dir", str(cache)]
    result = CliRunner().invoke(app, [*args, "--no-progress", "--device", "cpu"])

    assert "Traceback" not in result.output
    assert result.exit_code == 0 and isinstance(result.exception, (SystemExit, type(None))), result.output
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    by_path = {row["path"]: row for row in rows}
    assert len(by_path) == len(rows) and set(by_path) == {str(good), *map(str, awkward)}  # one row per input
    assert by_path[str(good)]["status"] == "ok" and by_path[str(good)]["label"] is not None
    for path in awkward:
        row = by_path[str(path)]
        assert row["status"] == case.status and row["reason"], row
        assert case.words in row["reason"], row
        assert not case.not_words or case.not_words not in row["reason"], row
        assert (row["label"] is None) == (case.status in ("failed", "empty")), row
