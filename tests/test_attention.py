"""Fused attention (scaled_dot_product_attention) against the explicit reference: same outputs, same
gradients, zeros (never NaN) for queries with no valid key; on the CPU and, where there is one, a GPU."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from auxformer.train.config import ModelConfig
from auxformer.train.model import MultiHeadAttention, attention_keys, build_model, use_attention

CUDA = pytest.param(
    "cuda",
    marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")],
)
DEVICES = ["cpu", CUDA]
TOL = dict(atol=1e-5, rtol=1e-5)


def _masks(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """4 clips: padded, full, padded, and one with no valid key at all."""
    query = torch.ones(4, 7, dtype=torch.bool, device=device)
    query[0, 5:] = False
    key = torch.ones(4, 9, dtype=torch.bool, device=device)
    key[0, 4:] = False
    key[2, 1:] = False
    key[3] = False
    return query, key


def _run(impl: str, module: MultiHeadAttention, x: torch.Tensor, src: torch.Tensor, keys) -> tuple:
    module.implementation = impl
    x, src = x.detach().requires_grad_(), src.detach().requires_grad_()
    out = module(x, src, keys)
    # weights on the output so each element's gradient differs
    (out * torch.linspace(-1, 1, out.numel(), device=out.device).reshape(out.shape)).sum().backward()
    grads = [x.grad, src.grad] + [p.grad.clone() for p in module.parameters()]
    module.zero_grad(set_to_none=True)
    return out.detach(), grads


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal", [False, True])
def test_fused_attention_equals_explicit_outputs_and_gradients(device, causal):
    torch.manual_seed(0)
    module = MultiHeadAttention(20, 4, dropout=0.0).to(device)
    qm, km = _masks(device)
    keys = attention_keys(qm, km, causal)
    x, src = torch.randn(4, 7, 20, device=device), torch.randn(4, 9, 20, device=device)
    fused, fused_grads = _run("fused", module, x, src, keys)
    explicit, explicit_grads = _run("explicit", module, x, src, keys)
    torch.testing.assert_close(fused, explicit, **TOL)
    for a, b in zip(fused_grads, explicit_grads, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    # a clip with no valid key: zeros out, zero gradient back to its keys, nothing NaN anywhere
    assert torch.isfinite(fused).all() and all(torch.isfinite(g).all() for g in fused_grads)
    assert (fused[3] == module.out.bias).all()
    assert (fused_grads[1][3] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal", [False, True])
def test_whole_model_same_under_both_attentions(device, causal):
    """AuxFormer on padded clips, one without a face: logits and every parameter's gradient agree."""
    cfg = ModelConfig(num_classes=6, video_dim=16, d_model=20, num_heads=2, num_layers=2, causal=causal)
    torch.manual_seed(0)
    model = build_model("auxformer", cfg).to(device).eval()  # eval: dropout off
    g = torch.Generator().manual_seed(1)
    audio, video = torch.randn(3, 31, 130, generator=g), torch.randn(3, 11, 16, generator=g)
    am, vm = torch.ones(3, 31, dtype=torch.bool), torch.ones(3, 11, dtype=torch.bool)
    am[0, 20:], vm[0, 6:], vm[1] = False, False, False  # padding; clip 1 has no face at all
    inputs = [t.to(device) for t in (audio, am, video, vm)]
    results = {}
    for impl in ("fused", "explicit"):
        use_attention(model, impl)
        out = model(*inputs)
        sum(h.square().sum() for h in out.heads.values()).backward()
        results[impl] = (out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
        model.zero_grad(set_to_none=True)
    torch.testing.assert_close(results["fused"][0], results["explicit"][0], **TOL)
    for name, grad in results["fused"][1].items():
        torch.testing.assert_close(grad, results["explicit"][1][name], **TOL, msg=lambda m, n=name: f"{n}: {m}")


def test_fused_is_the_default_and_the_switch_checks_its_argument():
    model = build_model("auxformer", replace(ModelConfig(), num_layers=1))
    assert {m.implementation for m in model.modules() if isinstance(m, MultiHeadAttention)} == {"fused"}
    with pytest.raises(ValueError, match="attention must be one of"):
        use_attention(model, "flash")


def test_cpu_training_dropout_path_is_the_same_attention_with_a_fair_mask(monkeypatch):
    """With attention dropout on the CPU, `fused` trains through a lean explicit form: with no entry
    dropped it is exactly the reference; its mask drops a share p of the entries."""
    from auxformer.train import model as model_module

    torch.manual_seed(0)
    module = MultiHeadAttention(20, 4, dropout=0.25)
    qm, km = _masks("cpu")
    keys = attention_keys(qm, km)
    x, src = torch.randn(4, 7, 20), torch.randn(4, 9, 20)
    module.eval()
    reference, _ = _run("explicit", module, x, src, keys)
    module.train()
    monkeypatch.setattr(model_module, "drop_mask", lambda shape, p, device: torch.zeros(shape, dtype=torch.bool))
    lean, _ = _run("fused", module, x, src, keys)
    torch.testing.assert_close(lean, reference / (1 - 0.25) - module.out.bias * (1 / 0.75 - 1), **TOL)
    monkeypatch.undo()
    mask = model_module.drop_mask((200, 1000), 0.1, torch.device("cpu"))
    assert abs(mask.float().mean().item() - 0.1) < 0.005
