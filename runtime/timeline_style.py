"""What the timeline plot and the overlay video agree on: the order of the labels and a colour each.

A label keeps its colour in both views (and from run to run of the same model), so a viewer who
learnt "orange is happy" from the plot reads the overlay the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .segment import Segment

# matplotlib's "tab10" palette (RGB 0-255): distinct for most colour-blind viewers, and what the
# training plots use by default
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
NO_PREDICTION = "no prediction"


def labels_of(segments: Iterable[Segment], labels: Sequence[str] | None = None) -> list[str]:
    """`labels` when given, else every label the segments' probabilities name, in the order they first
    appear (a session's segments all carry the manifest's order)."""
    if labels is not None:
        return list(labels)
    seen: dict[str, None] = {}
    for segment in segments:
        seen.update(dict.fromkeys(segment.probabilities or {}))
        if segment.label is not None:
            seen.setdefault(segment.label, None)
    return list(seen)


def label_colors(labels: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """RGB 0-255 per label, by its position in `labels` (the palette repeats past ten labels)."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
