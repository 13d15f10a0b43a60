"""Group clips of similar length into batches, each under a cost budget (and a size cap: the session
caps it by the engine's profile).

Padding costs compute (every padded frame is attended over and masked), so clips are sorted by
length before they are cut into batches. Attention makes a batch's memory grow with the square of
its padded length, so a batch is also closed once adding the next clip would push its estimated cost
over the budget: many long clips make smaller batches. Masks keep every clip's result independent
of its batch, so the grouping changes speed and memory, never outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

BatchCost = Callable[[int, int, int], int]  # (clips, padded audio frames, padded video frames) -> cost


def plan_batches(
    lengths: Sequence[tuple[int, int]], batch_size: int, cost: BatchCost | None = None, budget: int | None = None
) -> list[list[int]]:
    """Indices of clips (given as (audio frames, video frames)) cut into batches of at most
    `batch_size`, shortest first, so each batch pads to a length close to its clips' own; with `cost`
    and `budget`, a batch of more than one clip never costs more than `budget` (a clip over it alone
    stays a batch of one: refusing it is the caller's decision)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if (cost is None) != (budget is None):
        raise ValueError("cost and budget go together")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i][0], lengths[i][1], i))
    batches: list[list[int]] = []
    current: list[int] = []
    audio_len = video_len = 0
    for i in order:
        grown = (max(audio_len, lengths[i][0]), max(video_len, lengths[i][1]))
        full = len(current) >= batch_size
        over = cost is not None and budget is not None and cost(len(current) + 1, *grown) > budget
        if current and (full or over):
            batches.append(current)
            current, grown = [], lengths[i]
        current.append(i)
        audio_len, video_len = grown
    if current:
        batches.append(current)
    return batches
