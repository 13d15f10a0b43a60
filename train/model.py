"""AuxFormer (Goncalves & Busso, ICASSP 2022) and its baselines, with padding and missing-modality masks.

Shapes: audio [B, Ta, 130], video [B, Tv, Dv], masks [B, T] (true = valid frame). Every attention takes
a key mask, every pooled vector comes from valid frames only, so a clip's output does not depend on
the batch it sits in; a modality whose mask is all false contributes nothing and its head does not vote.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ATTENTION, MODEL_NAMES, ModelConfig


@dataclass
class Keys:
    """Which keys each query may see, and whether a clip has any valid key at all."""

    allowed: Tensor  # bool, broadcasts to [B, heads, Tq, Tk]
    any: Tensor  # float, broadcasts to [B, heads, Tq, 1]: 0 for a query that may see no key at all

    @functools.cached_property
    def fused_mask(self) -> Tensor:
        """`allowed` with every key opened for a query that may see none: the fused kernel then never
        meets an all-masked row (a NaN there), and `any` zeroes that row's output as before."""
        return self.allowed | (self.any == 0)


def attention_keys(query_mask: Tensor, key_mask: Tensor, causal: bool = False) -> Keys:
    allowed = key_mask[:, None, None, :]
    if causal:
        # Relative time from valid lengths, so streams of different rates (and padding) align:
        # key j is visible to query i when j / len_k <= i / len_q.
        q_len = query_mask.sum(1).clamp(min=1)[:, None, None]
        k_len = key_mask.sum(1).clamp(min=1)[:, None, None]
        i = torch.arange(query_mask.shape[1], device=query_mask.device)[None, :, None]
        j = torch.arange(key_mask.shape[1], device=key_mask.device)[None, None, :]
        allowed = allowed & (j * q_len <= i * k_len)[:, None]
    # per query row: a missing key modality, or (causal) a row whose visible keys are all invalid
    return Keys(allowed, allowed.any(-1, keepdim=True).to(torch.float32))


def drop_mask(shape: tuple[int, ...], p: float, device: torch.device) -> Tensor:
    """Bool mask, true with probability p (to 1/32768), from the global generator. One 15-bit draw per
    element costs less than half of `bernoulli_`'s float draw, which is the largest single cost of a
    CPU training step with attention dropout (the [B, heads, Tq, Tk] probabilities)."""
    bits = torch.empty(shape, dtype=torch.int16, device=device).random_(0, 32768)
    return bits < round(p * 32768)


class MultiHeadAttention(nn.Module):
    """`fused` (the default) runs torch's scaled_dot_product_attention, which never materialises the
    [B, heads, Tq, Tk] scores on the CPU; `explicit` spells the same maths out (the reference, and the
    form export writes when onnxruntime runs it faster). Both give the same outputs and gradients.

    One exception: attention dropout in training on the CPU, where torch's fused kernel cannot drop
    and its fallback adds full passes over the scores; `fused` then runs a lean explicit form (scale on
    q, in-place masking, a cheaper dropout mask, the 1/(1-p) on the small output)."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.out = (nn.Linear(d, d) for _ in range(4))
        self.dropout = nn.Dropout(dropout)
        self.implementation = "fused"

    def forward(self, x: Tensor, source: Tensor, keys: Keys) -> Tensor:
        (b, tq, d), tk = x.shape, source.shape[1]
        q = self.query(x).reshape(b, tq, self.heads, -1).transpose(1, 2)
        k = self.key(source).reshape(b, tk, self.heads, -1).transpose(1, 2)
        v = self.value(source).reshape(b, tk, self.heads, -1).transpose(1, 2)
        p = self.dropout.p if self.training else 0.0
        if self.implementation == "fused" and (p == 0 or q.device.type != "cpu"):
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=keys.fused_mask, dropout_p=p)
        elif self.implementation == "fused":
            scores = (q * (q.shape[-1] ** -0.5)) @ k.transpose(-2, -1)
            scores = scores.masked_fill_(~keys.allowed, torch.finfo(scores.dtype).min)
            dropped = scores.softmax(-1).masked_fill(drop_mask(scores.shape, p, scores.device), 0.0)
            attended = (dropped @ v) * (1 / (1 - p))
        else:
            scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
            # Lowest finite value, not -inf: a row with no valid key stays finite
            scores = scores.masked_fill(~keys.allowed, torch.finfo(scores.dtype).min)
            attended = self.dropout(scores.softmax(-1)) @ v
        # a row with no valid key gives zeros (on the [.., Tq, d_head] result, not the larger scores)
        attended = attended * keys.any.to(attended.dtype)
        return self.out(attended.transpose(1, 2).reshape(b, tq, d))


def use_attention(model: nn.Module, implementation: str) -> nn.Module:
    """Switch every attention of `model` to `fused` or `explicit` (same weights, same maths)."""
    if implementation not in ATTENTION:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION)}; got {implementation!r}")
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            module.implementation = implementation
    return model


@contextlib.contextmanager
def attention_as(model: nn.Module, implementation: str) -> Iterator[nn.Module]:
    """`model` with every attention switched to `implementation` inside, as it was afterwards."""
    before = {m: m.implementation for m in model.modules() if isinstance(m, MultiHeadAttention)}
    try:
        yield use_attention(model, implementation)
    finally:
        for module, was in before.items():
            module.implementation = was


class Layer(nn.Module):
    """Pre-LN transformer layer. With `source` it is a cross-modal layer (one LayerNorm normalises query
    and source, as in MulT); with `gated` each residual is h = g*h + (1-g)*sublayer(LN(h))."""

    def __init__(self, cfg: ModelConfig, attn_dropout: float, gated: bool):
        super().__init__()
        d = cfg.d_model
        self.attn_norm = nn.LayerNorm(d)
        self.attn = MultiHeadAttention(d, cfg.num_heads, attn_dropout)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, cfg.ffn_mult * d), nn.ReLU(), nn.Dropout(cfg.relu_dropout), nn.Linear(cfg.ffn_mult * d, d)
        )
        self.drop = nn.Dropout(cfg.res_dropout)
        self.gate = nn.Parameter(torch.rand(())) if gated else None  # the paper's alpha / beta, U(0, 1)

    def residual(self, h: Tensor, update: Tensor) -> Tensor:
        update = self.drop(update)
        return h + update if self.gate is None else self.gate * h + (1 - self.gate) * update

    def forward(self, x: Tensor, keys: Keys, source: Tensor | None = None) -> Tensor:
        q = self.attn_norm(x)
        kv = q if source is None else self.attn_norm(source)
        x = self.residual(x, self.attn(q, kv, keys))
        return self.residual(x, self.ffn(self.ffn_norm(x)))


class Encoder(nn.Module):
    """Scale by sqrt(d), optionally add sinusoidal positions (computed from the length, in-graph),
    embedding dropout, N layers, final LayerNorm. The source stream of a cross-modal encoder is
    embedded once and read by every layer."""

    def __init__(self, cfg: ModelConfig, attn_dropout: float, positional: bool = False, gated: bool = False):
        super().__init__()
        self.scale = math.sqrt(cfg.d_model)
        self.positional = positional
        half = cfg.d_model // 2
        inv_freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.embed_drop = nn.Dropout(cfg.embed_dropout)
        self.layers = nn.ModuleList(Layer(cfg, attn_dropout, gated) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def embed(self, x: Tensor) -> Tensor:
        x = x * self.scale
        if self.positional:
            angles = torch.arange(x.shape[1], device=x.device, dtype=torch.float32)[:, None] * self.inv_freq
            x = x + torch.cat([angles.sin(), angles.cos()], dim=-1).to(x.dtype)
        return self.embed_drop(x)

    def forward(self, x: Tensor, keys: Keys, source: Tensor | None = None) -> Tensor:
        x = self.embed(x)
        source = None if source is None else self.embed(source)
        for layer in self.layers:
            x = layer(x, keys, source)
        return self.norm(x)


class ResidualMLP(nn.Module):
    """classifier(z + MLP(z)): the main head (260-260-260) and the auxiliary heads (130-512-256-130)."""

    def __init__(self, dims: list[int], dropout: float, num_classes: int):
        super().__init__()
        blocks: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(dims)):
            blocks.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                blocks += [nn.ReLU(), nn.Dropout(dropout)]
        self.mlp = nn.Sequential(*blocks)
        self.classifier = nn.Linear(dims[-1], num_classes)

    def forward(self, z: Tensor) -> Tensor:
        return self.classifier(z + self.mlp(z))


class FeatureNorm(nn.Module):
    """z-normalisation with training-partition statistics, inside the graph; invalid frames become 0."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return torch.where(mask[..., None], (x - self.mean) / self.std, torch.zeros((), dtype=x.dtype))


def pool(h: Tensor, mask: Tensor, how: str) -> Tensor:
    """One vector per clip from valid frames only; zeros for a clip with no valid frame."""
    if how == "mean":
        m = mask.to(h.dtype)[..., None]
        return (h * m).sum(1) / m.sum(1).clamp(min=1)
    # last valid frame: the authors' "token" was the last *padded* step
    positions = torch.arange(h.shape[1], device=h.device)[None, :]
    last = (positions * mask).amax(1)
    picked = h.gather(1, last[:, None, None].expand(-1, 1, h.shape[2])).squeeze(1)
    return picked * mask.any(1, keepdim=True).to(h.dtype)


@dataclass
class ModelOutput:
    logits: Tensor  # [B, C], the fused prediction
    heads: dict[str, Tensor]  # per-head logits


class AuxFormer(nn.Module):
    """All five variants: which streams the main network has, whether its self-attention encoders are
    gated (AuxFormer) or positional (MulT), and which auxiliary branches exist."""

    def __init__(self, cfg: ModelConfig, name: str = "auxformer"):
        super().__init__()
        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
        self.cfg, self.name = cfg, name
        d = cfg.d_model
        fusion = name in ("auxformer", "baseline1", "mult")
        # main-network streams: audio <- video and video <- audio, or one stream over a single modality
        self.streams = ["audio", "video"] if fusion else [name.removesuffix("_only")]
        aux = {"auxformer": ["audio", "video"], "audio_only": ["audio"], "video_only": ["video"]}.get(name, [])
        # a unimodal network gets no projection for the other modality: it would train nothing (and
        # data-parallel training refuses parameters that get no gradient)
        self.modalities = [m for m in ("audio", "video") if m in self.streams or m in aux]
        self.audio_norm, self.video_norm = FeatureNorm(cfg.audio_dim), FeatureNorm(cfg.video_dim)
        audio_proj = nn.Identity() if cfg.audio_dim == d else nn.Linear(cfg.audio_dim, d, bias=False)
        self.audio_proj = audio_proj if "audio" in self.modalities else None
        # the paper's kernel-1 Conv1d, as the per-frame linear map it is
        self.video_proj = nn.Linear(cfg.video_dim, d, bias=False) if "video" in self.modalities else None
        first_dropout = cfg.cross_attn_dropout if fusion else cfg.self_attn_dropout
        self.first = nn.ModuleDict({m: Encoder(cfg, first_dropout, positional=True) for m in self.streams})
        self.second = nn.ModuleDict(
            {
                m: Encoder(cfg, cfg.self_attn_dropout, positional=name == "mult", gated=name != "mult")
                for m in self.streams
            }
        )
        self.main_head = ResidualMLP([d * len(self.streams)] * 3, cfg.out_dropout, cfg.num_classes)
        self.main_key = "av" if fusion else "main"

        self.aux_encoders = nn.ModuleDict({m: Encoder(cfg, cfg.self_attn_dropout) for m in aux})
        mlps = (
            [ResidualMLP([d, 512, 256, d], cfg.out_dropout, cfg.num_classes)] * len(aux)
            if cfg.shared_aux_mlp
            else [ResidualMLP([d, 512, 256, d], cfg.out_dropout, cfg.num_classes) for _ in aux]
        )
        self.aux_heads = nn.ModuleDict(dict(zip(aux, mlps, strict=True)))
        # which modalities each head reads: a head votes when any of them is present
        self.head_modalities = {self.main_key: tuple(self.streams), **{m: (m,) for m in aux}}
        self.apply(_init_linear)

    def forward(self, audio: Tensor, audio_mask: Tensor, video: Tensor, video_mask: Tensor) -> ModelOutput:
        inputs = {"audio": (audio, audio_mask, self.audio_norm), "video": (video, video_mask, self.video_norm)}
        x = {m: getattr(self, f"{m}_proj")(inputs[m][2](inputs[m][0], inputs[m][1])) for m in self.modalities}
        masks = {"audio": audio_mask, "video": video_mask}
        other = {"audio": "video", "video": "audio"}
        keys: dict[tuple[str, str], Keys] = {}

        def keys_for(query: str, key: str) -> Keys:  # each (query, key) pair's masks are built once
            if (query, key) not in keys:
                keys[(query, key)] = attention_keys(masks[query], masks[key], self.cfg.causal)
            return keys[(query, key)]

        pooled = []
        for m in self.streams:
            src = other[m] if len(self.streams) == 2 else m
            h = self.first[m](x[m], keys_for(m, src), x[src] if src != m else None)
            h = self.second[m](h, keys_for(m, m))
            pooled.append(pool(h, masks[m], self.cfg.pooling))
        heads = {self.main_key: self.main_head(torch.cat(pooled, dim=-1))}

        for m, encoder in self.aux_encoders.items():
            h = x[m]
            for _ in range(self.cfg.aux_passes):  # the authors apply the aux encoder 3x, weights tied
                h = encoder(h, keys_for(m, m))
            heads[m] = self.aux_heads[m](pool(h, masks[m], self.cfg.pooling))
        return ModelOutput(self.fuse(heads, masks), heads)

    def head_present(self, masks: dict[str, Tensor]) -> dict[str, Tensor]:
        """[B] bool per head: does the clip have any modality this head reads?"""
        present = {m: mask.any(1) for m, mask in masks.items()}
        out = {}
        for head, modalities in self.head_modalities.items():
            flag = present[modalities[0]]
            for m in modalities[1:]:
                flag = flag | present[m]
            out[head] = flag
        return out

    def fuse(self, heads: dict[str, Tensor], masks: dict[str, Tensor]) -> Tensor:
        """The prediction rule. Heads of absent modalities get weight 0; if nothing is present, all vote."""
        names = list(heads)
        logits = torch.stack([heads[n] for n in names], dim=1)  # [B, H, C]
        present = self.head_present(masks)
        votes = torch.stack([present[n] for n in names], dim=1).to(logits.dtype)  # [B, H]
        if self.cfg.prediction == "main":
            votes = votes * torch.tensor([n == self.main_key for n in names], dtype=logits.dtype, device=logits.device)
        votes = torch.where(votes.sum(1, keepdim=True) > 0, votes, torch.ones_like(votes))
        weights = (votes / votes.sum(1, keepdim=True))[..., None]
        if self.cfg.prediction == "mean_probs":
            probs = (weights * logits.softmax(-1)).sum(1)
            return probs.clamp(min=torch.finfo(probs.dtype).tiny).log()
        return (weights * logits).sum(1)

    @torch.no_grad()
    def set_normalization(self, stats: dict[str, tuple[Tensor, Tensor]]) -> None:
        """Load z-normalisation statistics: {"audio": (mean, std), "video": (mean, std)}."""
        for m, (mean, std) in stats.items():
            norm = getattr(self, f"{m}_norm")
            norm.mean.copy_(torch.as_tensor(mean))
            norm.std.copy_(torch.as_tensor(std).clamp(min=1e-6))

    def gates(self) -> dict[str, Tensor]:
        return {n: p for n, p in self.named_parameters() if n.endswith(".gate")}


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_model(name: str = "auxformer", config: ModelConfig | None = None) -> AuxFormer:
    """`auxformer`, `baseline1` (no aux networks), `mult` (MulT on audio+video), `audio_only`, `video_only`."""
    return AuxFormer(config or ModelConfig(), name)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["ATTENTION", "AuxFormer", "ModelConfig", "ModelOutput", "build_model", "count_parameters", "use_attention"]
