"""The Profile (min/opt/max input shapes, `auxformer.runtime.profile`) an export is built for: one
TensorRT optimization profile, the manifest's `shapes`, and the Triton config all read it from here.

It comes from the frame-count statistics of the training clips (`length_stats` in the checkpoint),
with the user's overrides. The minimum is always 1 (see `auxformer.runtime.profile`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auxformer.runtime.profile import Profile, ProfileError, Range


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
