"""Group clips of similar length into batches (within an engine's profile: the session caps the size).

Padding costs compute (every padded frame is attended over and masked), so clips are sorted by
length before they are cut into batches. Masks keep every clip's result independent of its batch,
so the grouping changes speed, never outputs.
"""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(lengths: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices of clips (given as (audio frames, video frames)) cut into batches of at most
    `batch_size`, shortest first, so each batch pads to a length close to its clips' own."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i][0], lengths[i][1], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
