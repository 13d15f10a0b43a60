"""Checkpoints are plain data: a normal one round-trips exactly, and a file that would run code when
unpickled is refused by every reader (export, resume, the protocol, the loading functions) without
the code ever running."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from auxformer.train import checkpoint
from auxformer.train.checkpoint import Checkpoint, CheckpointError
from auxformer.train.config import ModelConfig, TrainConfig
from auxformer.train.trainer import Trainer

from .conftest import TINY

QUIET = Console(quiet=True)
EXPORT_MAIN = "from auxformer.export.cli import main; main()"  # what the auxformer-export script runs


class RunsCode:
    """Unpickling this creates `marker`: the proof that a load executed the file's instructions."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.fixture(scope="module")
def trained(small_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(epochs=1, batch_size=16, training="optimized")
    Trainer(small_demo, cfg, ModelConfig(**TINY), out, console=QUIET, progress=False).fit()
    return out


@pytest.fixture
def booby_trapped(trained, tmp_path):
    """A copy of a real run whose checkpoint.pt and last.pt would each run code when unpickled."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    marker = tmp_path / "pwned"
    for name in (checkpoint.BEST, checkpoint.LAST):
        legit = torch.load(trained / name, weights_only=True)
        torch.save({**legit, "payload": RunsCode(marker)}, run / name)
    return run, marker


def test_checkpoint_round_trips_exactly(trained, small_demo, tmp_path):
    best = Checkpoint.load(trained)
    assert best.resume is None and best.epoch == 1 and best.calibration is not None
    assert best.run.labels == small_demo.labels and best.run.length_stats["audio"]["max"] > 0
    best.save(tmp_path / "copy.pt")
    again = Checkpoint.load(tmp_path / "copy.pt")
    assert again.run == best.run and again.calibration == best.calibration
    assert (again.epoch, again.dev_loss) == (best.epoch, best.dev_loss)
    assert again.state_dict.keys() == best.state_dict.keys()
    assert all(torch.equal(again.state_dict[k], best.state_dict[k]) for k in best.state_dict)
    # the rebuilt model gives the logits of the original
    clip = small_demo.load(small_demo.entries[0])
    inputs = [
        torch.from_numpy(clip.audio)[None],
        torch.from_numpy(clip.audio_mask)[None],
        torch.from_numpy(clip.video)[None],
        torch.from_numpy(clip.video_mask)[None],
    ]
    with torch.no_grad():
        assert torch.equal(best.build_model()(*inputs).logits, again.build_model()(*inputs).logits)

    last = Checkpoint.load(trained / checkpoint.LAST)
    last.save(tmp_path / "last.pt")
    resumed = Checkpoint.load(tmp_path / "last.pt")
    assert last.resume is not None and resumed.resume is not None
    assert resumed.resume.progress == last.resume.progress and resumed.resume.scheduler == last.resume.scheduler
    a, b = last.resume.rng[0], resumed.resume.rng[0]
    assert torch.equal(a.torch, b.torch) and torch.equal(a.dropout, b.dropout)
    assert torch.equal(a.numpy["keys"], b.numpy["keys"]) and torch.equal(a.python["internal"], b.python["internal"])


def test_the_trap_is_real(booby_trapped):
    """Loaded the way the first release loaded checkpoints, the file does run its code: so the tests
    below, where the marker never appears, can fail."""
    run, marker = booby_trapped
    torch.load(run / checkpoint.BEST, weights_only=False)
    assert marker.exists()


def test_loading_functions_refuse_code_without_running_it(booby_trapped):
    run, marker = booby_trapped
    for path in (run, run / checkpoint.BEST, run / checkpoint.LAST):
        for load in (Checkpoint.load, checkpoint.load_model):
            with pytest.raises(CheckpointError, match="refused: loading it would need unpickling arbitrary"):
                load(path)
    assert not marker.exists()


def test_export_refuses_code_without_running_it(booby_trapped):
    run, marker = booby_trapped
    result = subprocess.run(
        [sys.executable, "-c", EXPORT_MAIN, str(run), "--out", str(run.parent / "export")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 4, output
    assert "refused" in output and "unpickling arbitrary Python objects" in output and "re-train" in output
    assert "Traceback" not in output
    assert not marker.exists()


def test_resume_and_protocol_refuse_code_without_running_it(booby_trapped, small_demo):
    from auxformer.train.cli import app

    run, marker = booby_trapped
    args = ["--corpus", str(small_demo.root), "--out", str(run), "--epochs", "2", "--no-progress", "--resume"]
    result = CliRunner().invoke(app, args)
    output = " ".join(result.output.split())
    assert result.exit_code == 1, output
    assert "refused" in output and "unpickling arbitrary Python objects" in output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback

    # the protocol resumes an interrupted job from its last.pt
    from auxformer.train.protocol import Job, ProtocolConfig, run_job

    cfg = ProtocolConfig(runs=1, models=("auxformer",), trainings=("optimized",), epochs=2, layers=2)
    job = Job(0, "auxformer", "optimized", 0)
    (run.parent / "protocol" / job.folder).mkdir(parents=True)
    shutil.copy(run / checkpoint.LAST, run.parent / "protocol" / job.folder / checkpoint.LAST)
    with pytest.raises(CheckpointError, match="refused"):
        run_job(str(small_demo.root), cfg, job, str(run.parent / "protocol"), threads=1)
    assert not marker.exists()


def test_old_and_foreign_files_are_refused_clearly(trained, tmp_path):
    old = {k: v for k, v in torch.load(trained / checkpoint.BEST, weights_only=True).items() if k != "metadata"}
    torch.save({**old, "format": "auxformer-checkpoint/1"}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"format 'auxformer-checkpoint/1'.*re-train"):
        Checkpoint.load(tmp_path / "old.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an auxformer checkpoint"):
        Checkpoint.load(tmp_path / "foreign.pt")
    (tmp_path / "torn.pt").write_bytes((trained / checkpoint.BEST).read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        Checkpoint.load(tmp_path / "torn.pt")


def test_resume_of_a_torn_last_pt_or_of_no_run_says_why(trained, small_demo, tmp_path):
    """A truncated last.pt (a crash while copying the run) and a folder with no run: one line, no
    traceback; --resume never quietly starts afresh."""
    from auxformer.train.cli import app

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / checkpoint.LAST).write_bytes((trained / checkpoint.LAST).read_bytes()[:5000])
    args = ["--corpus", str(small_demo.root), "--epochs", "2", "--layers", "2", "--no-progress", "--resume"]
    result = CliRunner().invoke(app, [*args, "--out", str(run)])
    output = " ".join(result.output.split())
    assert result.exit_code == 1 and "last.pt is not a readable checkpoint (truncated" in output, output
    assert isinstance(result.exception, SystemExit)  # no traceback

    empty = tmp_path / "empty"
    result = CliRunner().invoke(app, [*args, "--out", str(empty)])
    assert result.exit_code == 2 and "no run to continue" in " ".join(result.output.split()), result.output
    assert not empty.exists()  # refused before any work


def test_weights_that_do_not_fit_the_model_are_a_checkpoint_error(trained, tmp_path):
    raw = torch.load(trained / checkpoint.BEST, weights_only=True)
    weights = dict(raw["state_dict"])
    weights.pop(next(iter(weights)))
    torch.save({**raw, "state_dict": weights}, tmp_path / checkpoint.BEST)
    with pytest.raises(CheckpointError, match=r"checkpoint.pt's weights do not fit its model: Missing key"):
        checkpoint.load_model(tmp_path)
    torch.save({**raw, "state_dict": [1, 2]}, tmp_path / checkpoint.BEST)
    with pytest.raises(CheckpointError, match=r"not a mapping of names to tensors"):
        checkpoint.load_model(tmp_path)
