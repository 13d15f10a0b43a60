"""Training batches: random (every clip padded to the longest of a random batch) or length-bucketed.

Bucketed batches, drawn afresh every epoch from the trainer's shuffle generator: the clips are
shuffled, cut into buckets of `bucket_batches` batches, each bucket is sorted by length (ties keep the
shuffled order) and cut into batches, and the batches of all buckets are shuffled. Clips of similar
length then share a batch, so little of a batch is padding, while which clips meet, and the order of
the batches, still change every epoch. Only the last batch of an epoch can be short, as with random
batches, so the number of steps does not change. Both kinds are global batches: under DDP every
process draws the same ones from the same generator and trains on its own share of each
(`distributed.Context.share`), so the processes step in lock-step on disjoint clips.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .config import BATCHING

# Batches per bucket: larger buckets pad less, smaller ones mix lengths more between epochs. With 8,
# batches of CREMA-D-like clips (1.3-5 s) span about a tenth of the length range.
BUCKET_BATCHES = 8


def epoch_batches(
    lengths: Sequence[int],
    batch_size: int,
    generator: torch.Generator,
    how: str = "bucketed",
    bucket_batches: int = BUCKET_BATCHES,
) -> list[list[int]]:
    """One epoch's batches of clip indices, drawn from `generator` (same state, same batches)."""
    if how not in BATCHING:
        raise ValueError(f"batching must be one of {', '.join(BATCHING)}; got {how!r}")
    if batch_size < 1 or bucket_batches < 1:
        raise ValueError("batch_size and bucket_batches must be >= 1")
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if how == "random":
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    size = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), size):
        # sorted() is stable: clips of equal length keep their shuffled order
        bucket = sorted(order[start : start + size], key=lambda i: lengths[i])
        batches += [bucket[i : i + batch_size] for i in range(0, len(bucket), batch_size)]
    # the short batch (at most one: only the last bucket can be short) stays last, as with random batches
    full = [b for b in batches if len(b) == batch_size]
    rest = [b for b in batches if len(b) < batch_size]
    shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
    return shuffled + rest


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of the padded frames that are padding."""
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    valid = sum(lengths[i] for b in batches for i in b)
    return 1 - valid / max(padded, 1)
