"""Training on a GPU with nothing but PyTorch (what `benchmarks/gpu_check.py` runs): fp32 / bf16 / fp16
steps stay finite and learn, and the bucketed batches of a feature corpus train on CUDA.
Fused-attention equality on CUDA lives in test_attention.py."""

from __future__ import annotations

import pytest
import torch

from auxformer.train.config import ModelConfig
from auxformer.train.data import collate
from auxformer.train.loss import multitask_loss
from auxformer.train.model import build_model
from auxformer.train.precision import Precision

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]
WEIGHTS = {"av": 1 / 3, "audio": 1 / 3, "video": 1 / 3}


def _batch(device, seed=0, n=8):
    from auxformer.runtime.contracts import ClipFeatures

    g = torch.Generator().manual_seed(seed)
    clips = []
    for i in range(n):
        ta, tv = 40 + 7 * i, 12 + 2 * i
        clips.append(
            ClipFeatures(
                f"c{i}",
                torch.randn(ta, 130, generator=g).numpy(),
                torch.ones(ta, dtype=torch.bool).numpy(),
                torch.randn(tv, 64, generator=g).numpy(),
                (torch.arange(tv) % 5 != 0).numpy() if i else torch.zeros(tv, dtype=torch.bool).numpy(),
                label=str(i % 3),
            )
        )
    return collate(clips, {"0": 0, "1": 1, "2": 2}).to(device)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_mixed_precision_steps_are_finite_and_learn(precision):
    device = torch.device("cuda")
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    torch.manual_seed(0)
    model = build_model("auxformer", ModelConfig(num_classes=3, video_dim=64, num_layers=2)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = Precision(precision, device)
    batch, losses = _batch(device), []
    for _ in range(8):
        with run.autocast():
            out = model(*batch.inputs())
            loss = multitask_loss(model, out.heads, batch, WEIGHTS)
        assert torch.isfinite(loss)
        run.step(loss, optimizer, model.parameters(), 0.8)
        losses.append(float(loss))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32
    assert losses[-1] < losses[0]
    if precision == "fp16":
        assert run.state_dict()["scale"] > 0


def test_bucketed_batches_of_a_corpus_train_on_cuda(tmp_path):
    from auxformer.train.batching import epoch_batches
    from auxformer.train.data import ClipDataset
    from auxformer.train.demo_corpus import DemoSpec, generate

    corpus = generate(tmp_path / "corpus", DemoSpec(speakers=4, clips_per_class=2, video_dim=16))
    data = ClipDataset(corpus, corpus.entries, corpus.labels)
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model("auxformer", ModelConfig(num_classes=len(corpus.labels), video_dim=16, num_layers=1))
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = Precision("fp32", device)
    batches = epoch_batches(data.lengths(), 8, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(len(data)))
    for ids in batches:
        batch = data.batch(ids).to(device)
        out = model(*batch.inputs())
        loss = multitask_loss(model, out.heads, batch, WEIGHTS)
        assert torch.isfinite(loss) and out.logits.device.type == "cuda"
        run.step(loss, optimizer, model.parameters(), 0.8)
