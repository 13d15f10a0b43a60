"""--precision: fp32 by default; bf16 only where the CPU has it natively (or on a GPU); fp16 only on GPUs,
refused on the CPU with the reason before any work; the fp16 scaler's state travels with a resume."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from auxformer.train import checkpoint
from auxformer.train.cli import app
from auxformer.train.config import ModelConfig, TrainConfig
from auxformer.train.loss import multitask_loss
from auxformer.train.model import build_model
from auxformer.train.precision import Precision, PrecisionError, check, cpu_has_native_bf16

from .conftest import TINY

CPU = torch.device("cpu")


def test_fp32_is_the_default_and_runs_anywhere():
    assert TrainConfig().precision == "fp32"
    check("fp32", CPU)
    assert Precision().scaler is None


def test_cpu_refuses_fp16_and_emulated_bf16_with_the_reason():
    with pytest.raises(PrecisionError, match="fp16 is for GPUs"):
        check("fp16", CPU)
    if cpu_has_native_bf16():
        check("bf16", CPU)
    else:
        with pytest.raises(PrecisionError, match="AVX512-BF16 or AMX"):
            check("bf16", CPU)
    with pytest.raises(PrecisionError, match="must be one of"):
        check("fp8", CPU)
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="half")


def test_cli_refuses_fp16_on_cpu_before_any_work(tmp_path):
    result = CliRunner().invoke(
        app, ["--demo-features", "--out", str(tmp_path / "run"), "--device", "cpu", "--precision", "fp16"]
    )
    assert result.exit_code == 2 and "fp16 is for GPUs" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_step_on_cpu_is_finite(small_demo, precision):
    """The maths of a reduced-precision step (the device check is bypassed: speed is not the point here)."""
    from auxformer.train.data import ClipDataset

    data = ClipDataset(small_demo, small_demo.entries[:8], small_demo.labels)
    batch = data.batch(range(8))
    torch.manual_seed(0)
    model = build_model("auxformer", ModelConfig(num_classes=6, video_dim=16, **TINY)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = Precision(precision, CPU, check=False)
    before = [p.detach().clone() for p in model.parameters()]
    with run.autocast():
        out = model(*batch.inputs())
        assert out.logits.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        loss = multitask_loss(model, out.heads, batch, TrainConfig().loss_weights)
    run.step(loss, optimizer, model.parameters(), 0.8)
    assert torch.isfinite(loss)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    if precision == "fp16":
        assert run.state_dict()["scale"] > 0


def test_scaler_state_travels_in_last_checkpoint(tmp_path):
    state = {**Precision("fp16", CPU, check=False).state_dict(), "scale": 1024.0}  # not the default scale
    info = checkpoint.RunInfo("auxformer", ModelConfig(**TINY), TrainConfig(precision="fp16"), ["a", "b"])
    resume = checkpoint.ResumeState(checkpoint.TrainState(), {}, {}, [], scaler=state)
    checkpoint.Checkpoint(info, {}, resume=resume).save(tmp_path / "last.pt")
    loaded = checkpoint.Checkpoint.load(tmp_path / "last.pt")
    assert loaded.run.train_config.precision == "fp16"  # recorded in the run info
    again = Precision("fp16", CPU, check=False)
    again.load_state_dict(loaded.resume.scaler)
    assert again.scaler.get_scale() == 1024.0
