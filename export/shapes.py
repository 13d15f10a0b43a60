"""Min/opt/max input shapes of an exported model: one TensorRT optimization profile, the manifest's
`shapes`, and the Triton config all read them from here.

They come from the frame-count statistics of the training clips (`length_stats` in the checkpoint).
The minimum length is always 1: a clip may be short, and a missing modality is one masked step
(`pad_batch` clamps every length to >= 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from auxformer.runtime.manifest import DYNAMIC_AXES

AXES = ("batch", "audio_len", "video_len")


class ProfileError(ValueError):
    """Shape ranges that cannot form a TensorRT optimization profile."""


@dataclass(frozen=True)
class Range:
    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ProfileError(f"a shape range needs 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}")


@dataclass(frozen=True)
class Profile:
    batch: Range
    audio_len: Range
    video_len: Range

    def axis(self, name: str) -> Range:
        return getattr(self, name)

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {name: asdict(self.axis(name)) for name in AXES}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, int]]) -> Profile:
        return cls(**{name: Range(**data[name]) for name in AXES})

    def input_shapes(self, video_dim: int, audio_dim: int = 130) -> dict[str, tuple[tuple[int, ...], ...]]:
        """(min, opt, max) shape of every model input, in the I/O order of docs/architecture.md."""
        feature_dims = {"audio": (audio_dim,), "video": (video_dim,), "audio_mask": (), "video_mask": ()}
        out = {}
        for name, axes in DYNAMIC_AXES.items():
            ranges = [self.axis(a) for a in axes]
            out[name] = tuple(
                (*(getattr(r, which) for r in ranges), *feature_dims[name]) for which in ("min", "opt", "max")
            )
        return out


@dataclass(frozen=True)
class ProfileOverrides:
    """User overrides of the statistics-derived profile; None keeps the derived value."""

    opt_batch: int | None = None
    max_batch: int | None = None
    opt_audio_len: int | None = None
    max_audio_len: int | None = None
    opt_video_len: int | None = None
    max_video_len: int | None = None


# Inference batches are smaller than training ones; 32 is the paper's training batch.
DEFAULT_OPT_BATCH = 8
DEFAULT_MAX_BATCH = 32
LENGTH_QUANTUM = 16  # round the longest length up, so an engine is not sized to one odd clip


def _round_up(n: int, quantum: int) -> int:
    return -(-n // quantum) * quantum


def profile_from_stats(length_stats: dict[str, dict[str, Any]], overrides: ProfileOverrides | None = None) -> Profile:
    """opt = median training length, max = longest training clip rounded up; min = 1."""
    o = overrides or ProfileOverrides()

    def length(modality: str, opt: int | None, top: int | None) -> Range:
        stats = length_stats.get(modality)
        if top is None and not stats:
            raise ProfileError(f"the checkpoint has no {modality} length statistics: give --max-{modality}-len")
        hi = top if top is not None else _round_up(int(stats["max"]), LENGTH_QUANTUM)
        mid = opt if opt is not None else min(int(stats["p50"]), hi) if stats else hi
        return Range(1, max(1, mid), hi)

    max_batch = o.max_batch or DEFAULT_MAX_BATCH
    return Profile(
        batch=Range(1, o.opt_batch or min(DEFAULT_OPT_BATCH, max_batch), max_batch),
        audio_len=length("audio", o.opt_audio_len, o.max_audio_len),
        video_len=length("video", o.opt_video_len, o.max_video_len),
    )
