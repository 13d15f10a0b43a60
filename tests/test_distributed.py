"""Data-parallel training on CPU with gloo: it runs under torchrun, and it equals one process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest
import torch
import torch.multiprocessing as mp
from rich.console import Console

from auxformer.train import checkpoint
from auxformer.train.config import ModelConfig, TrainConfig
from auxformer.train.distributed import Context
from auxformer.train.trainer import Trainer

from .conftest import TINY

# no dropout inside the model: then N processes must give one process's result up to float noise
NO_DROPOUT = dict(
    embed_dropout=0, cross_attn_dropout=0, self_attn_dropout=0, relu_dropout=0, res_dropout=0, out_dropout=0
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, corpus_root: str, out: str, batch_size: int = 12) -> None:
    from auxformer.train.corpus import FeatureCorpus

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    _fit(FeatureCorpus.open(corpus_root), out, batch_size)


def _fit(corpus, out: str, batch_size: int = 12) -> None:
    cfg = TrainConfig(epochs=2, batch_size=batch_size, training="optimized")
    Trainer(
        corpus, cfg, ModelConfig(**TINY, **NO_DROPOUT), out, console=Console(quiet=True), progress=False, device="cpu"
    ).fit()


def test_shares_cover_a_global_batch_exactly_once():
    for world in (1, 2, 3):
        for n in (1, 5, 12, 32):
            shares = [Context(rank=r, world_size=world).share(n) for r in range(world)]
            covered = [i for s in shares for i in range(n)[s]]
            assert covered == list(range(n))


@pytest.mark.parametrize("batch_size", [12, 107])  # 107: the last batch holds one clip, one process idles
def test_two_gloo_processes_equal_one_process(small_demo, tmp_path, batch_size):
    _fit(small_demo, str(tmp_path / "single"), batch_size)
    args = (2, _free_port(), str(small_demo.root), str(tmp_path / "ddp"), batch_size)
    mp.spawn(_worker, args=args, nprocs=2, join=True)
    single = checkpoint.Checkpoint.load(tmp_path / "single" / "last.pt")
    ddp = checkpoint.Checkpoint.load(tmp_path / "ddp" / "last.pt")
    assert single.resume is not None and ddp.resume is not None and len(ddp.resume.rng) == 2
    for name, tensor in single.state_dict.items():
        if name.endswith("key.bias"):
            # softmax ignores a key bias (same shift for every key): its gradient is pure rounding
            # noise, which Adam scales up to full-size steps, so it differs between any two runs
            continue
        assert torch.allclose(tensor, ddp.state_dict[name], atol=1e-4), name
    for a, b in zip(single.resume.progress.history, ddp.resume.progress.history, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4 and abs(a["dev_loss"] - b["dev_loss"]) < 1e-4


def test_torchrun_cli_one_epoch_writes_one_checkpoint(small_demo, tmp_path):
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    out = tmp_path / "run"
    cmd = [
        torchrun,
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "auxformer.train.cli",
        "--corpus",
        str(small_demo.root),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--layers",
        "1",
        "--no-progress",
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.pt")) == ["checkpoint.pt", "last.pt"]
    assert (out / "metrics.json").is_file()
    assert result.stdout.count("macro-F1") >= 1 and result.stdout.count("done in") == 1  # one voice
