"""How much memory one padded batch needs, and the budget a Session keeps every batch under.

Attention is quadratic in length: the score tensors `[B, heads, Tq, Tk]` (float32) of the audio
self-attention (Ta x Ta), the cross-modal attentions (Ta x Tv, Tv x Ta) and the video self-attention
(Tv x Tv) dominate a long clip's memory; a minute of audio (6000 frames at 100 fps) with the paper's
10 heads is 1.4 GB per score tensor, and onnxruntime holds several at once. The estimate reads the
model's shape from its manifest (`model.config`: d_model, num_heads, ffn_mult; `model.name`: which
attentions exist), so the Session can refuse a clip that cannot fit and cut batches by cost.

The copy counts below were measured with onnxruntime on the CPU (`benchmarks/peak_memory.py`): the
paper's model took 5.37 GiB over its 0.12 GiB at rest for one 59-s clip (about four score tensors)
and 1.31 GiB for a 30-s one; they are rounded up, so the estimate stays above what a batch takes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

from .contracts import AUDIO_DIM
from .manifest import Manifest

GIB = 1 << 30
FLOAT = 4  # bytes: every activation is float32 (an fp16 graph computes attention in float32 too)
SCORE_COPIES = 5  # score tensors of one attention alive at once (matmul, scale, mask, softmax; measured ~4)
ACTIVATION_COPIES = 8  # [B, T, d]-sized tensors alive per stream (residual, norm, q/k/v, output)
INPUT_COPIES = 2  # the padded batch, and its normalised copy inside the graph


@dataclass(frozen=True)
class ModelShape:
    """The parts of a model's configuration its memory depends on. Defaults: the paper's model
    (docs/model.md), assumed where a manifest does not record its configuration."""

    name: str = "auxformer"
    d_model: int = 130
    num_heads: int = 10
    ffn_mult: int = 4
    video_dim: int = 4096

    @classmethod
    def of(cls, manifest: Manifest) -> ModelShape:
        config: dict[str, Any] = manifest.model.config or {}
        known = {k: int(config[k]) for k in ("d_model", "num_heads", "ffn_mult") if isinstance(config.get(k), int)}
        return cls(name=manifest.model.name, video_dim=manifest.video_dim, **known)

    @property
    def attentions(self) -> tuple[tuple[str, str], ...]:
        """(query, key) modality pairs the graph attends over (an unknown model: all of them)."""
        if self.name == "audio_only":
            return (("audio", "audio"),)
        if self.name == "video_only":
            return (("video", "video"),)
        return (("audio", "video"), ("video", "audio"), ("audio", "audio"), ("video", "video"))

    def batch_bytes(self, batch: int, audio_len: int, video_len: int) -> int:
        """Estimated peak memory (bytes) of running one padded batch of this shape: the largest
        attention's score tensors, every stream's activations and the inputs. Monotone in every axis."""
        lengths = {"audio": max(1, audio_len), "video": max(1, video_len)}
        scores = max(batch * self.num_heads * lengths[q] * lengths[k] for q, k in self.attentions)
        streams = {m for pair in self.attentions for m in pair}
        per_frame = self.d_model * (self.ffn_mult + ACTIVATION_COPIES)
        activations = sum(batch * lengths[m] * per_frame for m in streams)
        inputs = batch * (lengths["audio"] * (AUDIO_DIM + 1) + lengths["video"] * (self.video_dim + 1))
        return FLOAT * (SCORE_COPIES * scores + activations + INPUT_COPIES * inputs)


def physical_memory() -> int | None:
    """Bytes of memory this process may use: the machine's, or a smaller cgroup limit; None if unknown."""
    sizes = []
    with contextlib.suppress(ValueError, OSError, AttributeError):  # not every platform has these names
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            sizes.append(int(text))
    return min(sizes) if sizes else None


@dataclass(frozen=True)
class MemoryBudget:
    """The most memory one batch may take (estimated by ModelShape.batch_bytes).

    `bytes` when given; else `fraction` of the memory this process may use (physical memory, or its
    cgroup limit), or `fallback` bytes where that is unknown. A clip that alone needs more is failed
    with the limit in its reason, never run; batches are cut so that each stays under it."""

    bytes: int | None = None
    fraction: float = 0.5
    fallback: int = 2 * GIB

    def __post_init__(self) -> None:
        if self.bytes is not None and self.bytes < 1:
            raise ValueError(f"a memory budget is a positive number of bytes, got {self.bytes}")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")

    def limit(self) -> int:
        if self.bytes is not None:
            return self.bytes
        memory = physical_memory()
        return self.fallback if memory is None else int(self.fraction * memory)


def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"
