"""`auxformer-infer` on folders of feature files (media files: test_runtime_media.py): one row per input
file, bad files as status rows, the same predictions as the library, and clear exits."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from auxformer.runtime import Session
from auxformer.runtime.cli import app
from auxformer.runtime.inputs import find_inputs

from .export_support import tiny_export
from .runtime_support import LABELS, feature_clip, ragged_clips, write_npz

runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    for i, clip in enumerate(ragged_clips(14, seed=7)):
        write_npz(clip, root / ("a" if i % 2 else "b") / f"{clip.clip_id}.npz")
    (root / "b" / "torn.npz").write_bytes(b"PK\x03\x04 half a zip")
    write_npz(feature_clip("wrong_dim", 50, 15, video_dim=8), root / "wrong_dim.npz")
    (root / "notes.txt").write_text("not a clip")
    (root / ".hidden").mkdir()
    write_npz(feature_clip("hidden", 50, 15), root / ".hidden" / "x.npz")
    return root


def _run(*args: str):
    result = runner.invoke(app, [*args, "--no-progress"])
    return result


def test_every_input_file_gets_a_row_and_bad_ones_say_why(folder, tmp_path):
    result = _run(
        str(folder), "--model", str(tiny_export().path), "--out", str(tmp_path), "--batch-size", "4", "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    jobs, skipped = find_inputs([folder])
    files = [j.path for j in jobs]
    assert [r["path"] for r in rows] == [str(p) for p in files] and len(rows) == 16 and skipped == 1
    by_id = {r["clip_id"]: r for r in rows}
    assert by_id["b/torn.npz"]["status"] == "failed" and "not a feature file" in by_id["b/torn.npz"]["reason"]
    assert by_id["wrong_dim.npz"]["status"] == "failed" and "expects 16" in by_id["wrong_dim.npz"]["reason"]
    predicted = [r for r in rows if r["label"] is not None]
    assert len(predicted) >= 12
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-6 and r["timing"]["infer"] >= 0 for r in predicted)

    # the CLI's predictions are the library's
    session = Session.load(tiny_export().path, device="cpu")
    library = {p.source: p for p in session.predict(files, batch_size=3)}
    for r in rows:
        assert r["label"] == library[r["path"]].label and r["status"] == library[r["path"]].status.value

    with open(tmp_path / "predictions.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["path"] for r in table] == [r["path"] for r in rows]
    assert {f"p_{label}" for label in LABELS} | {"label_av", "label_audio", "label_video"} <= set(table[0])
    assert "no prediction, by reason" in result.output and "clips/s" in result.output


def test_missing_removes_a_modality_from_every_clip(folder, tmp_path):
    result = _run(str(folder / "a"), "--model", str(tiny_export().path), "--out", str(tmp_path), "--missing", "audio")
    assert result.exit_code == 0, result.output
    with open(tmp_path / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["has_audio"] == "0" and r["label_audio"] == "" for r in rows)


def test_usage_errors_exit_clearly(folder, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(str(empty), "--model", str(tiny_export().path)).exit_code == 1
    both = _run(str(folder), "--model", str(tiny_export().path), "--engine", "x.plan")
    assert both.exit_code == 2 and "exactly one of --model" in both.output
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not onnx")
    result = _run(str(folder), "--model", str(bogus), "--out", str(tmp_path))
    assert result.exit_code == 2 and "onnxruntime cannot load it" in result.output
    assert not (tmp_path / "predictions.jsonl").exists()


def test_a_failing_inference_stops_the_producer_too(tmp_path, monkeypatch):
    """An inference error reaches the caller, and the extraction thread does not linger behind it
    (more clips than the ready queue holds, so the producer is blocked when inference fails)."""
    import threading

    from auxformer.runtime.infer import InferOptions, run

    many = tmp_path / "many"
    for i in range(80):
        write_npz(feature_clip(f"c{i}", 20, 6), many / f"c{i}.npz")
    session = Session.load(tiny_export().path, device="cpu")

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU fell off the bus")

    monkeypatch.setattr(session, "predict", broken)
    jobs, _ = find_inputs([many])
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="fell off the bus"):
        run(session, jobs, tmp_path, InferOptions(batch_size=2, window=1))
    assert threading.active_count() == before
