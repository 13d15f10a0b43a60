"""timeline.png: a recording's emotion probabilities over time, with what the model had to go on.

Three panels share the time axis: the fused probabilities stacked per label (a gap where a window
gave no prediction), a ribbon of the predicted (argmax) label, and a strip showing where the voice
and a face were present and where windows failed. Each instant is drawn from the window whose centre
is nearest, so overlapping windows tile the axis without overdrawing (the overlay video picks its
window the same way). A long recording would give more windows than the image has pixels: past
`max_bins` windows they are averaged into that many equal bins (probabilities over the windows that
predicted, presence and failure as fractions, drawn as shade), so a 1-hour file reads like a 10-s one.

matplotlib is imported only when a plot is asked for (`auxformer.common.figures`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.common.figures import pyplot, save_figure

from .contracts import Status
from .segment import Segment
from .timeline_style import label_colors, labels_of

FIGSIZE = (12.0, 4.8)  # inches; at DPI the PNG is exactly 1200 x 480 pixels
DPI = 100
MAX_BINS = 600  # about two pixels per bin at the plot's width
# rows of the strip, top to bottom: name, colour (RGB 0-255); colours no label of a model with up to
# eight labels has (timeline_style.PALETTE), dark for failures
STRIP = (("audio", (23, 190, 207)), ("face", (188, 189, 34)), ("failed", (40, 40, 40)))
# nice tick steps in seconds, for recordings of seconds to hours
TICK_STEPS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


@dataclass
class Bins:
    """The timeline cut into drawable blocks: block i covers [lo[i], hi[i])."""

    lo: np.ndarray  # float64 [N] seconds
    hi: np.ndarray
    probabilities: np.ndarray  # float64 [N, C]; NaN rows where no window predicted
    presence: np.ndarray  # float64 [N, len(STRIP)]: fraction of windows with audio, face, failed
    windows: int  # how many segments went in
    averaged: bool  # True when windows were averaged into equal bins

    @property
    def predicted(self) -> np.ndarray:
        return ~np.isnan(self.probabilities).any(axis=1)

    @property
    def argmax(self) -> np.ndarray:
        """Index of the top label per block, -1 where nothing was predicted."""
        out = np.full(len(self.lo), -1)
        ok = self.predicted
        out[ok] = self.probabilities[ok].argmax(axis=1)
        return out


def bin_segments(segments: Sequence[Segment], labels: Sequence[str], max_bins: int = MAX_BINS) -> Bins:
    """One block per window (the span nearer its centre than any other's), or `max_bins` equal bins."""
    segments = sorted(segments, key=lambda s: (s.start + s.end, s.start))
    probs = np.array([_probabilities(s, labels) for s in segments], np.float64).reshape(len(segments), len(labels))
    presence = np.array(
        [(s.present.get("audio", False), s.present.get("video", False), s.status is Status.FAILED) for s in segments],
        np.float64,
    ).reshape(len(segments), len(STRIP))
    starts = np.array([s.start for s in segments], np.float64)
    ends = np.array([s.end for s in segments], np.float64)
    centres = (starts + ends) / 2
    if len(segments) <= max_bins:
        middles = (centres[1:] + centres[:-1]) / 2
        lo = np.maximum(starts, np.concatenate([[-np.inf], middles]))
        hi = np.minimum(ends, np.concatenate([middles, [np.inf]]))
        return Bins(lo, hi, probs, presence, len(segments), averaged=False)
    edges = np.linspace(starts.min(), ends.max(), max_bins + 1)
    index = np.clip(np.searchsorted(edges, centres, side="right") - 1, 0, max_bins - 1)
    counts = np.bincount(index, minlength=max_bins).astype(np.float64)
    ok = ~np.isnan(probs).any(axis=1)
    ok_counts = np.bincount(index[ok], minlength=max_bins).astype(np.float64)
    sums = np.stack([np.bincount(index[ok], probs[ok, c], minlength=max_bins) for c in range(len(labels))], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums.reshape(max_bins, len(labels)) / ok_counts[:, None]
        shares = np.stack([np.bincount(index, presence[:, k], minlength=max_bins) for k in range(len(STRIP))], 1)
        shares = shares / counts[:, None]
    mean[ok_counts == 0] = np.nan
    keep = counts > 0  # an empty bin is a gap, not a block
    return Bins(edges[:-1][keep], edges[1:][keep], mean[keep], shares[keep], len(segments), averaged=True)


def write_timeline_plot(
    segments: Iterable[Segment],
    path: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    title: str | None = None,
    max_bins: int = MAX_BINS,
) -> Path:
    """Draw `segments` (any order) into a PNG at `path`, written atomically; returns the path.

    `labels` fixes the order and colours of the labels (default: as the segments name them)."""
    segments = list(segments)
    labels = labels_of(segments, labels)
    bins = bin_segments(segments, labels, max_bins)
    fig = _figure(bins, labels, title)
    save_figure(fig, path, dpi=DPI, tight=False)
    return Path(path)


def _probabilities(segment: Segment, labels: Sequence[str]) -> list[float]:
    if not segment.ok or not segment.probabilities:
        return [math.nan] * len(labels)
    return [float(segment.probabilities.get(label, 0.0)) for label in labels]


def _figure(bins: Bins, labels: Sequence[str], title: str | None) -> Any:
    plt = pyplot()
    colors = {label: tuple(c / 255 for c in rgb) for label, rgb in label_colors(labels).items()}
    fig, (ax_p, ax_l, ax_s) = plt.subplots(
        3, 1, figsize=FIGSIZE, sharex=True, layout="constrained", gridspec_kw={"height_ratios": [5, 0.6, 1.6]}
    )
    predicted = bins.predicted
    lo, hi = bins.lo[predicted], bins.hi[predicted]
    bottom = np.zeros(len(lo))
    for c, label in enumerate(labels):
        top = bottom + bins.probabilities[predicted, c]
        _rectangles(ax_p, lo, hi, bottom, top, colors[label])
        bottom = top
    ax_p.set(ylim=(0, 1), ylabel="probability")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[label]) for label in labels]
    ax_p.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False, fontsize=9)

    argmax = bins.argmax
    for c, label in enumerate(labels):
        mine = argmax == c
        _rectangles(ax_l, bins.lo[mine], bins.hi[mine], 0.0, 1.0, colors[label])
    ax_l.set(ylim=(0, 1), yticks=[])
    ax_l.set_ylabel("label", rotation=0, ha="right", va="center")

    for row, (_, rgb) in enumerate(STRIP):
        y = len(STRIP) - 1 - row
        share = bins.presence[:, row]
        shown = share > 0
        rgba = np.zeros((int(shown.sum()), 4))
        rgba[:, :3] = np.array(rgb) / 255
        rgba[:, 3] = 0.25 + 0.75 * share[shown]  # averaged bins: shade says how much of the bin
        _rectangles(ax_s, bins.lo[shown], bins.hi[shown], y + 0.1, y + 0.9, rgba)
    ax_s.set(ylim=(0, len(STRIP)), yticks=[len(STRIP) - 0.5 - k for k in range(len(STRIP))])
    ax_s.set_yticklabels([name for name, _ in STRIP])

    if len(bins.lo):
        t0, t1 = float(bins.lo.min()), float(bins.hi.max())
    else:
        t0, t1 = 0.0, 1.0
        ax_p.text(0.5, 0.5, "no windows", ha="center", va="center", transform=ax_p.transAxes)
    _time_axis(ax_s, t0, t1)
    span = _clock(t1 - t0, t1 - t0) + (" s" if t1 - t0 < 120 else "")
    note = f"{bins.windows} windows over {span}"
    if bins.averaged:
        note += f", averaged into {len(bins.lo)} bins"
    ax_p.set_title(f"{title}: {note}" if title else note, loc="left", fontsize=10)
    return fig


def _rectangles(ax: Any, x0: np.ndarray, x1: np.ndarray, y0: Any, y1: Any, color: Any) -> None:
    """Filled boxes [x0, x1] x [y0, y1] as one collection: thousands of bar patches draw slowly."""
    collections = _collections()
    y0, y1 = np.broadcast_to(y0, x0.shape), np.broadcast_to(y1, x0.shape)
    corners = np.stack([np.stack(p, axis=-1) for p in ((x0, y0), (x0, y1), (x1, y1), (x1, y0))], axis=1)
    ax.add_collection(collections.PolyCollection(corners, facecolors=color, linewidths=0, antialiased=False))


def _collections() -> Any:
    pyplot()  # sets the backend before anything else of matplotlib loads
    import matplotlib.collections

    return matplotlib.collections


def _time_axis(ax: Any, t0: float, t1: float) -> None:
    plt = pyplot()
    span = max(t1 - t0, 1e-6)
    step = next((s for s in TICK_STEPS if span / s <= 12), TICK_STEPS[-1] * math.ceil(span / TICK_STEPS[-1] / 12))
    ax.set_xlim(t0, t1)
    ax.xaxis.set_major_locator(plt.MultipleLocator(step))
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: _clock(x, span)))
    ax.set_xlabel("seconds" if span < 120 else "time (h:mm:ss)" if span >= 3600 else "time (m:ss)")


def _clock(seconds: float, span: float) -> str:
    """Seconds as "12.5" for short recordings, "m:ss" past two minutes, "h:mm:ss" past an hour."""
    if span < 120:
        return f"{seconds:g}"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if span >= 3600 else f"{minutes + 60 * hours}:{secs:02d}"
