"""Model contracts: size, gates, masks, batch invariance, missing modalities, prediction rule."""

from __future__ import annotations

import pytest
import torch

from auxformer.train.config import MODEL_NAMES, ModelConfig
from auxformer.train.model import attention_keys, build_model, count_parameters


def _clips(video_dim: int, seed: int = 0):
    """Three clips of different lengths, the first with gaps in its face track."""
    g = torch.Generator().manual_seed(seed)
    lengths = [(23, 9), (41, 17), (30, 12)]
    clips = []
    for ta, tv in lengths:
        vm = torch.ones(tv, dtype=torch.bool)
        clips.append(
            (
                torch.randn(ta, 130, generator=g),
                torch.ones(ta, dtype=torch.bool),
                torch.randn(tv, video_dim, generator=g),
                vm,
            )
        )
    clips[0][3][[2, 5]] = False  # frames without a face inside the clip
    return clips


def _pad(clips, garbage: float = 0.0):
    ta = max(c[0].shape[0] for c in clips)
    tv = max(c[2].shape[0] for c in clips)
    b, dv = len(clips), clips[0][2].shape[1]
    a = torch.full((b, ta, 130), garbage)
    am = torch.zeros(b, ta, dtype=torch.bool)
    v = torch.full((b, tv, dv), garbage)
    vm = torch.zeros(b, tv, dtype=torch.bool)
    for i, (x, xm, y, ym) in enumerate(clips):
        a[i, : len(x)], am[i, : len(x)], v[i, : len(y)], vm[i, : len(y)] = x, xm, y, ym
    return a, am, v, vm


def test_paper_configuration_size_and_gates():
    model = build_model("auxformer", ModelConfig(num_classes=6))
    assert 6.9e6 <= count_parameters(model) <= 7.5e6
    gates = model.gates()
    assert len(gates) == 10 and all(g.numel() == 1 for g in gates.values())
    assert all(0 <= g.item() <= 1 for g in gates.values())  # U(0, 1) initialisation
    assert sum("second.audio" in n for n in gates) == 5  # alpha: audio branch
    assert sum("second.video" in n for n in gates) == 5  # beta: video branch


def test_authors_options_share_the_aux_mlp():
    separate = count_parameters(build_model("auxformer", ModelConfig(num_classes=6)))
    shared = count_parameters(build_model("auxformer", ModelConfig.authors(num_classes=6)))
    assert 6.9e6 <= shared < separate
    assert abs(shared - 7.0e6) < 0.1e6 and abs(separate - 7.3e6) < 0.1e6


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_clip_alone_equals_clip_in_padded_batch(name, pooling):
    torch.manual_seed(0)
    model = build_model(name, ModelConfig(num_classes=6, pooling=pooling)).eval()
    clips = _clips(4096)
    with torch.no_grad():
        batch = model(*_pad(clips, garbage=1e4))  # padding content must not matter either
        for i, clip in enumerate(clips):
            alone = model(*_pad([clip]))
            assert (alone.logits[0] - batch.logits[i]).abs().max() <= 1e-5
            for head, logits in alone.heads.items():
                assert (logits[0] - batch.heads[head][i]).abs().max() <= 1e-5


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("missing", ["audio", "video"])
def test_missing_modality_gives_finite_logits(name, missing, tiny_config):
    torch.manual_seed(0)
    model = build_model(name, tiny_config).eval()
    a, am, v, vm = _pad(_clips(16))
    if missing == "audio":
        am[:] = False
    else:
        vm[:] = False
    with torch.no_grad():
        out = model(a, am, v, vm)
    assert torch.isfinite(out.logits).all()
    assert all(torch.isfinite(h).all() for h in out.heads.values())


def test_absent_modality_head_never_votes(tiny_config):
    torch.manual_seed(0)
    model = build_model("auxformer", tiny_config).eval()
    a, am, v, vm = _pad(_clips(16))
    vm[1] = False  # clip 1 has no face
    with torch.no_grad():
        out = model(a, am, v, vm)
    h = out.heads
    assert torch.allclose(out.logits[1], (h["av"][1] + h["audio"][1]) / 2, atol=1e-6)
    assert torch.allclose(out.logits[0], (h["av"][0] + h["audio"][0] + h["video"][0]) / 3, atol=1e-6)


def test_prediction_rules(tiny_config):
    from dataclasses import replace

    torch.manual_seed(0)
    inputs = _pad(_clips(16))
    state = build_model("auxformer", tiny_config).state_dict()
    outs = {}
    for rule in ("mean_logits", "mean_probs", "main"):
        model = build_model("auxformer", replace(tiny_config, prediction=rule)).eval()
        model.load_state_dict(state)
        with torch.no_grad():
            outs[rule] = model(*inputs)
    assert torch.allclose(outs["main"].logits, outs["main"].heads["av"])
    probs = torch.stack([h.softmax(-1) for h in outs["mean_probs"].heads.values()]).mean(0)
    assert torch.allclose(outs["mean_probs"].logits.exp(), probs, atol=1e-6)


def test_no_causal_mask_by_default_and_causal_option(tiny_config):
    """Default: an early frame's representation sees the whole clip. Causal: it sees only the past."""
    from dataclasses import replace

    qm = torch.ones(1, 6, dtype=torch.bool)
    keys = attention_keys(qm, qm, causal=False)
    assert keys.allowed.all()
    causal = attention_keys(qm, qm, causal=True).allowed[0, 0]
    assert torch.equal(causal, torch.ones(6, 6, dtype=torch.bool).tril())
    assert not tiny_config.causal
    # cross-modal causal masks follow relative time, not indices: 3 video frames against 6 audio frames
    km = torch.ones(1, 3, dtype=torch.bool)
    cross = attention_keys(qm, km, causal=True).allowed[0, 0]
    assert cross[0].tolist() == [True, False, False] and cross[-1].all()
    torch.manual_seed(0)
    model = build_model("auxformer", replace(tiny_config, causal=True)).eval()
    a, am, v, vm = _pad(_clips(16)[:1])
    with torch.no_grad():
        out = model(a, am, v, vm)
    assert torch.isfinite(out.logits).all()


def test_positional_encodings_follow_any_length(tiny_config):
    """No fixed table: very long and very short clips both work, and outputs are finite."""
    torch.manual_seed(0)
    model = build_model("mult", tiny_config).eval()
    for ta, tv in [(1, 1), (3000, 900)]:
        with torch.no_grad():
            out = model(
                torch.randn(1, ta, 130),
                torch.ones(1, ta, dtype=torch.bool),
                torch.randn(1, tv, 16),
                torch.ones(1, tv, dtype=torch.bool),
            )
        assert torch.isfinite(out.logits).all()


def test_heads_per_variant(tiny_config):
    expected = {
        "auxformer": {"av", "audio", "video"},
        "baseline1": {"av"},
        "mult": {"av"},
        "audio_only": {"main", "audio"},
        "video_only": {"main", "video"},
    }
    inputs = _pad(_clips(16))
    for name, heads in expected.items():
        with torch.no_grad():
            out = build_model(name, tiny_config).eval()(*inputs)
        assert set(out.heads) == heads
        assert out.logits.shape == (3, 6)


def test_unimodal_network_ignores_the_other_modality(tiny_config):
    torch.manual_seed(0)
    model = build_model("audio_only", tiny_config).eval()
    a, am, v, vm = _pad(_clips(16))
    with torch.no_grad():
        ref = model(a, am, v, vm).logits
        other = model(a, am, torch.randn_like(v), vm).logits
    assert torch.equal(ref, other)


def test_normalisation_is_inside_the_model(tiny_config):
    model = build_model("baseline1", tiny_config).eval()
    a, am, v, vm = _pad(_clips(16))
    mean, std = torch.randn(130), torch.rand(130) + 0.5
    model.set_normalization({"audio": (mean, std)})
    plain = build_model("baseline1", tiny_config).eval()
    plain.load_state_dict({k: t for k, t in model.state_dict().items() if "audio_norm" not in k}, strict=False)
    with torch.no_grad():
        assert torch.allclose(model(a, am, v, vm).logits, plain((a - mean) / std, am, v, vm).logits, atol=1e-5)


@pytest.mark.parametrize("name", ["auxformer", "mult"])
def test_causal_masks_keep_batch_invariance_when_a_stream_starts_without_a_face(name, tiny_config):
    """With causal masks, early audio frames may see only invalid video frames: their attention is
    zeroed row by row, so padding still cannot leak in."""
    from dataclasses import replace

    torch.manual_seed(0)
    model = build_model(name, replace(tiny_config, causal=True)).eval()
    clips = _clips(16)
    clips[1][3][:3] = False  # no face in the first video frames
    with torch.no_grad():
        batch = model(*_pad(clips, garbage=1e4))
        for i, clip in enumerate(clips):
            alone = model(*_pad([clip]))
            assert (alone.logits[0] - batch.logits[i]).abs().max() <= 1e-5


@pytest.mark.parametrize("name", ["audio_only", "video_only", "auxformer"])
def test_every_parameter_learns(name, tiny_config):
    """No parameter may sit unused (data-parallel training refuses those): a unimodal network has no
    projection for the modality it ignores."""
    torch.manual_seed(0)
    model = build_model(name, tiny_config)
    out = model(*_pad(_clips(16)))
    sum(h.sum() for h in out.heads.values()).backward()
    idle = [n for n, p in model.named_parameters() if p.grad is None]
    assert not idle, idle
