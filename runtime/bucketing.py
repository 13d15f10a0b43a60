"""Group clips of similar length into batches, within the shape limits of an engine.

Padding costs compute (every padded frame is attended over and masked), so clips are sorted by
length before they are cut into batches. Masks keep every clip's result independent of its batch,
so the grouping changes speed, never outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .batching import pad_to
from .contracts import ClipFeatures

AXES = ("batch", "audio_len", "video_len")


@dataclass(frozen=True)
class ShapeLimits:
    """Smallest and largest batch / audio_len / video_len an engine accepts (its optimization profile)."""

    batch: tuple[int, int]
    audio_len: tuple[int, int]
    video_len: tuple[int, int]

    @classmethod
    def from_shapes(cls, shapes: dict[str, dict[str, int]]) -> ShapeLimits:
        """From the manifest's `shapes` ({"batch": {"min", "opt", "max"}, ...})."""
        return cls(**{axis: (int(shapes[axis]["min"]), int(shapes[axis]["max"])) for axis in AXES})

    def refuse(self, clip: ClipFeatures) -> str | None:
        """Why `clip` cannot go through the engine (too long), or None."""
        for axis, n in (("audio_len", len(clip.audio_mask)), ("video_len", len(clip.video_mask))):
            high = getattr(self, axis)[1]
            if n > high:
                return (
                    f"{axis.split('_')[0]} has {n} frames, the engine takes at most {high}: "
                    "rebuild the engine with a larger profile or cut the clip"
                )
        return None

    def fit(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Pad a batch up to the profile's minimum shapes (masked rows and frames, so outputs don't change)."""
        return pad_to(feeds, self.batch[0], self.audio_len[0], self.video_len[0])


def plan_batches(lengths: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices of clips (given as (audio frames, video frames)) cut into batches of at most
    `batch_size`, shortest first, so each batch pads to a length close to its clips' own."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i][0], lengths[i][1], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
