"""Input discovery: every path named and every clip-like file found gets exactly one job (a reason when
it cannot be read), symlinked folders are followed once, clip ids stay unique and inside their folder;
the CLI writes a row for each, and the library refuses images like the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auxformer.runtime import Session
from auxformer.runtime.cli import app
from auxformer.runtime.inputs import find_inputs

from .export_support import tiny_export
from .runtime_support import feature_clip, write_npz


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    root = tmp_path / "clips"
    write_npz(feature_clip("good", 40, 12), root / "good.npz")
    write_npz(feature_clip("deep", 40, 12), root / "real" / "deep.npz")
    (root / "linked").symlink_to(root / "real", target_is_directory=True)  # the same folder twice: walked once
    (root / "real" / "up").symlink_to(root, target_is_directory=True)  # a cycle back to the root
    (root / "loop.mp4").symlink_to(root / "loop.mp4")  # a link to itself
    (root / "gone.npz").symlink_to(root / "nowhere.npz")
    (root / "x.mp4").mkdir()  # a directory named like a video
    (root / "x.mp4" / "inner.npz").write_bytes(b"never looked at")
    for name in ("face.jpg", "still.png", "anim.gif"):
        (root / name).write_bytes(b"\x89 not really an image")
    (root / "notes.txt").write_text("not a clip")
    return root


def _by_id(jobs):
    return {j.clip_id: j for j in jobs}


def test_every_clip_like_path_gets_one_job_with_a_reason(messy):
    jobs, skipped = find_inputs([messy])
    by_id = _by_id(jobs)
    clip_like = ["anim.gif", "face.jpg", "gone.npz", "good.npz", "linked/deep.npz"]
    clip_like += ["loop.mp4", "still.png", "x.mp4"]
    assert sorted(by_id) == clip_like
    assert skipped == 1  # notes.txt
    assert by_id["good.npz"].ok and by_id["linked/deep.npz"].ok
    assert "symlink loop" in by_id["loop.mp4"].reason
    assert "broken symlink" in by_id["gone.npz"].reason
    assert "a directory" in by_id["x.mp4"].reason
    for image in ("face.jpg", "still.png", "anim.gif"):
        assert by_id[image].reason.startswith("an image, not a video: ")
    assert [j.index for j in jobs] == list(range(len(jobs)))
    assert all(".." not in Path(j.clip_id).parts and not Path(j.clip_id).is_absolute() for j in jobs)


def test_named_paths_always_get_a_row_and_ids_stay_unique(messy, tmp_path):
    other = tmp_path / "other"
    write_npz(feature_clip("good", 40, 12), other / "good.npz")  # same name as messy/good.npz
    named = [messy / "good.npz", other / "good.npz", messy / "notes.txt", tmp_path / "missing.mp4", messy / "good.npz"]
    jobs, skipped = find_inputs(named)
    assert [j.clip_id for j in jobs] == ["good.npz", "good.npz#2", "notes.txt", "missing.mp4"]  # named twice: one row
    assert jobs[0].ok and jobs[1].ok and skipped == 0
    assert "not a media or feature file" in jobs[2].reason
    assert jobs[3].reason == "no such file or directory"
    # a folder and a file inside it: the file keeps one row
    jobs, _ = find_inputs([messy, messy / "good.npz"])
    assert [j.path for j in jobs].count(messy / "good.npz") == 1


def test_an_unreadable_file_and_folder_get_a_reason(messy, monkeypatch):
    """Root reads everything, so the refusal is planted where discovery opens and lists files."""
    import auxformer.runtime.inputs as inputs

    real_open, real_scandir = open, os.scandir

    def refusing_open(path, *args, **kwargs):
        if Path(path).name == "good.npz":
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    def refusing_scandir(path):
        if Path(path).name == "linked":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(inputs, "open", refusing_open, raising=False)
    monkeypatch.setattr(inputs.os, "scandir", refusing_scandir)
    by_id = _by_id(find_inputs([messy])[0])
    assert by_id["good.npz"].reason == "cannot be read: Permission denied"
    assert by_id["linked"].reason == "cannot list this folder: Permission denied"


def test_the_cli_writes_one_row_per_input(messy, tmp_path):
    out = tmp_path / "out"
    args = [str(messy), str(tmp_path / "missing.mp4"), "--model", str(tiny_export().path)]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = {r["clip_id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert len(rows) == 9 and "missing.mp4" in rows
    assert rows["good.npz"]["label"] is not None and rows["linked/deep.npz"]["label"] is not None
    failed = {k: r["reason"] for k, r in rows.items() if r["status"] == "failed"}
    assert set(failed) == set(rows) - {"good.npz", "linked/deep.npz"}
    assert failed["face.jpg"].startswith("an image, not a video") and "symlink loop" in failed["loop.mp4"]


def test_the_library_refuses_an_image(messy):
    session = Session.load(tiny_export().path, device="cpu")
    (prediction,) = session.predict([messy / "face.jpg"])
    assert prediction.status.value == "failed" and prediction.label is None
    assert prediction.reason.startswith("an image, not a video: .jpg")
