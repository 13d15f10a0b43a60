"""`auxformer-infer` never loses work: rows written batch by batch survive kill -9 (earlier lines byte
for byte) and `--resume` completes the set; SIGTERM / SIGINT stop with valid files and a one-line
message; a locked, unwritable or full `--out`, or one holding an earlier run's rows, is refused before
any work; a disk that fills mid-run stops the run and keeps the rows written.

Killed runs are real processes (`tests/infer_process.py`: the CLI with each batch slowed down, so the
kill lands mid-run) on `.npz` feature files; the refusals run in-process."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auxformer.runtime.cli import app
from auxformer.runtime.out_folder import claim

from .export_support import media_model, tiny_export
from .media_factory import make_clip
from .runtime_support import ragged_clips, write_npz

ROOT = Path(__file__).resolve().parents[1]
CLIPS = 40
TIMEOUT = 60  # seconds any process of these tests may take


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    for clip in ragged_clips(CLIPS, seed=3):
        write_npz(clip, root / f"{clip.clip_id}.npz")
    return root


def _args(clips: Path, out: Path, *extra: str) -> list[str]:
    model = str(tiny_export().path)
    return [str(clips), "--model", model, "--out", str(out), "--batch-size", "1", "--device", "cpu", "--no-progress"]


def _start(clips: Path, out: Path, *extra: str, delay: float = 0.15) -> subprocess.Popen:
    env = {**os.environ, "AUXFORMER_TEST_PREDICT_DELAY": str(delay)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.infer_process", *_args(clips, out), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # SIGINT is ignored in a shell's background jobs, and a child inherits that: give it the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_rows(proc: subprocess.Popen, jsonl: Path, rows: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not (jsonl.exists() and jsonl.read_bytes().count(b"\n") >= rows):
        if proc.poll() is not None:
            pytest.fail(f"the run ended before writing {rows} rows: {proc.stdout.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {rows} rows after {TIMEOUT} s")
        time.sleep(0.01)
    assert proc.poll() is None, "the run must still be going when it is stopped"


def _complete(jsonl: Path) -> tuple[bytes, list[dict]]:
    """The file's complete lines (a kill may tear the last one), each of which must be a row."""
    data = jsonl.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    rows = [json.loads(line) for line in complete.splitlines()]
    assert all(r["status"] and r["clip_id"] for r in rows)
    assert len({r["path"] for r in rows}) == len(rows), "one row per file"
    return complete, rows


def _said(result) -> str:
    return " ".join(result.output.split())  # rich wraps long lines


def _csv_paths(out: Path) -> list[str]:
    with open(out / "predictions.csv", newline="") as fh:
        return [row["path"] for row in csv.DictReader(fh)]


def _kill_9_after(clips: Path, out: Path, rows: int, *extra: str) -> bytes:
    proc = _start(clips, out, *extra)
    try:
        _wait_for_rows(proc, out / "predictions.jsonl", rows)
        proc.kill()
        assert proc.wait(TIMEOUT) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait(TIMEOUT)
    complete, written = _complete(out / "predictions.jsonl")
    assert rows <= len(written) < CLIPS
    return complete


def test_kill_9_at_any_point_keeps_the_rows_and_resume_completes_them(clips, tmp_path):
    out = tmp_path / "out"
    first = _kill_9_after(clips, out, 1)  # as soon as the first rows are there
    assert not (out / "predictions.csv").exists()  # a killed run leaves no torn table: none at all here
    # the killed run's lock died with it; the rows it wrote stay, byte for byte
    second = _kill_9_after(clips, out, CLIPS // 2, "--resume")  # mid-run
    assert second.startswith(first) and len(second) > len(first)

    result = subprocess.run(
        [sys.executable, "-m", "tests.infer_process", *_args(clips, out), "--resume"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    final, rows = _complete(out / "predictions.jsonl")
    assert final.startswith(second) and final == (out / "predictions.jsonl").read_bytes()
    expected = sorted(str(p) for p in clips.glob("*.npz"))
    assert sorted(r["path"] for r in rows) == expected  # exactly one row per input
    assert _csv_paths(out) == expected  # the table: every row, in input order
    assert "rows from an earlier run" in result.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_the_run_with_valid_files(clips, tmp_path, signum):
    out = tmp_path / "out"
    proc = _start(clips, out)
    try:
        _wait_for_rows(proc, out / "predictions.jsonl", 4)
        # while it runs, the folder is locked: a second run is refused, and writes nothing
        before = (out / "predictions.jsonl").read_bytes()
        second = CliRunner().invoke(app, _args(clips, out))
        assert second.exit_code == 3 and "in use by another auxformer-infer run" in _said(second)
        assert (out / "predictions.jsonl").read_bytes().startswith(before)

        proc.send_signal(signum)
        output = proc.communicate(timeout=TIMEOUT)[0].decode()
    finally:
        proc.kill()
        proc.wait(TIMEOUT)
    assert proc.returncode == 128 + signum, output
    assert "Traceback" not in output and f"stopped by {signal.Signals(signum).name}" in output
    data = (out / "predictions.jsonl").read_bytes()
    assert data.endswith(b"\n")  # every row complete
    _, rows = _complete(out / "predictions.jsonl")
    assert 4 <= len(rows) < CLIPS
    assert sorted(_csv_paths(out)) == sorted(r["path"] for r in rows)  # the table matches the rows kept


def test_an_earlier_runs_rows_are_not_replaced_without_resume(clips, tmp_path):
    out = tmp_path / "out"
    assert CliRunner().invoke(app, _args(clips, out)).exit_code == 0
    before = {name: (out / name).read_bytes() for name in ("predictions.jsonl", "predictions.csv")}
    again = CliRunner().invoke(app, _args(clips, out))
    assert again.exit_code == 3 and "pass --resume" in _said(again) and isinstance(again.exception, SystemExit)
    resumed = CliRunner().invoke(app, [*_args(clips, out), "--resume"])  # nothing left to do
    assert resumed.exit_code == 0, resumed.output
    assert {name: (out / name).read_bytes() for name in before} == before


def test_a_locked_out_is_refused(clips, tmp_path):
    out = tmp_path / "out"
    with claim(out):
        result = CliRunner().invoke(app, [*_args(clips, out), "--resume"])
    assert result.exit_code == 3 and "in use by another auxformer-infer run" in _said(result)
    assert not (out / "predictions.jsonl").exists()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> tuple[Path, Path]:
    """A folder with one video clip, and the tiny model that runs on media files."""
    root = tmp_path_factory.mktemp("media")
    make_clip(root / "clips" / "a.mp4", seconds=0.4)
    return root / "clips", media_model(root)


def _full_disk(monkeypatch, after: int | None = None) -> None:
    """A full disk: every os.write fails with ENOSPC; or, with `after`, the writes of rows do once
    `after` batches of them have been written."""
    real_write, batches = os.write, []

    def write(fd, data):
        if after is not None:
            if not os.readlink(f"/proc/self/fd/{fd}").endswith("predictions.jsonl"):
                return real_write(fd, data)
            batches.append(fd)
            if len(batches) <= after:
                return real_write(fd, data)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("case", ["file in the path", "a file", "full disk"])
def test_an_unusable_out_is_refused_before_any_work(media, tmp_path, monkeypatch, case):
    folder, model = media
    (tmp_path / "file").write_text("not a folder")
    out = {"file in the path": tmp_path / "file" / "sub", "a file": tmp_path / "file"}.get(case, tmp_path / "out")
    if case == "full disk":
        _full_disk(monkeypatch)
    cache = tmp_path / "cache"
    args = [str(folder), "--model", str(model), "--out", str(out), "--cache-dir", str(cache), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3 and result.exception.__class__ is SystemExit, result.output
    said = _said(result)
    assert "Traceback" not in said and "nothing was done" in said
    assert ("disk is full" if case == "full disk" else "not a folder") in said
    assert not cache.exists() or not any(cache.rglob("*.npz"))  # no clip was extracted
    assert not (out / "predictions.jsonl").exists() or not (out / "predictions.jsonl").read_bytes()


def test_a_disk_that_fills_mid_run_stops_it_and_keeps_the_rows(clips, tmp_path, monkeypatch):
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        _full_disk(patch, after=2)
        result = CliRunner().invoke(app, [*_args(clips, out), "--workers", "1"])
    assert result.exit_code == 4 and result.exception.__class__ is SystemExit, result.output
    said = _said(result)
    assert "No space left on device" in said and "rerun with --resume" in said
    data, rows = _complete(out / "predictions.jsonl")
    assert data == (out / "predictions.jsonl").read_bytes() and 2 <= len(rows) < CLIPS
    assert sorted(_csv_paths(out)) == sorted(r["path"] for r in rows)

    finish = CliRunner().invoke(app, [*_args(clips, out), "--resume"])
    assert finish.exit_code == 0, finish.output
    final, rows = _complete(out / "predictions.jsonl")
    assert final.startswith(data) and len(rows) == CLIPS


def test_resume_knows_a_file_however_its_path_was_spelled(clips, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert CliRunner().invoke(app, _args(clips, out)).exit_code == 0
    first = (out / "predictions.jsonl").read_bytes()
    monkeypatch.chdir(clips.parent)  # the same folder, now given relative to the working directory
    relative = Path(clips.name)
    again = CliRunner().invoke(app, [*_args(relative, out), "--resume"])
    assert again.exit_code == 0, again.output
    assert (out / "predictions.jsonl").read_bytes() == first  # nothing predicted twice
    assert len(_csv_paths(out)) == CLIPS


def test_a_log_line_that_is_not_a_whole_row_is_refused_before_any_work(clips, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.jsonl").write_text(json.dumps({"path": "/x/a.npz", "status": "ok"}) + "\n")
    result = CliRunner().invoke(app, [*_args(clips, out), "--resume"])
    assert result.exit_code == 3 and "is not a prediction row" in _said(result)
    assert (out / "predictions.jsonl").read_text().count("\n") == 1


def test_a_run_stopped_before_its_first_row_does_not_block_the_next(clips, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.csv").write_text("path\n")  # what a run stopped before any row leaves
    result = CliRunner().invoke(app, _args(clips, out))
    assert result.exit_code == 0, result.output
    assert len(_csv_paths(out)) == CLIPS


def test_a_file_name_that_is_not_utf8_gets_its_row_and_the_table_is_written(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for clip in ragged_clips(2, seed=5):
        write_npz(clip, clips / f"{clip.clip_id}.npz")
    odd = os.fsencode(clips) + b"/caf\xe9.npz"  # Latin-1 bytes: not UTF-8
    os.rename(next(clips.glob("*.npz")), odd)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, _args(clips, out))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert len(_csv_paths(out)) == 2 and "\\udce9" in (out / "predictions.csv").read_text()


def test_the_table_keeps_input_order_for_inputs_given_relative(media, clips, tmp_path, monkeypatch):
    """Feature files are predicted before media files (no extraction to wait for), so the log's order
    is not the input order: the table puts the rows back in input order, however the paths were given."""
    folder, model = media
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.mp4").write_bytes((folder / "a.mp4").read_bytes())
    (mixed / "b.npz").write_bytes(next(clips.glob("*.npz")).read_bytes())
    monkeypatch.chdir(tmp_path)
    args = ["mixed", "--model", str(model), "--out", "out", "--no-cache", "--no-progress", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    logged = [json.loads(line)["path"] for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert logged == [str(mixed / "b.npz"), str(mixed / "a.mp4")]  # the log: in the order predicted
    assert _csv_paths(tmp_path / "out") == [str(mixed / "a.mp4"), str(mixed / "b.npz")]
