"""`auxformer-infer SOURCE --timeline`: one source -> `timeline.jsonl` + `timeline.csv` written as the
segments come, then `timeline.png` and, with `--overlay`, the annotated video.

A live source prints each segment as it arrives; a file shows its progress. The plot and the overlay
are drawn after the stream from `timeline.jsonl` (read back, not held: memory stays bounded
whatever the length), by `timeline_plot.write_timeline_plot` and `overlay.write_overlay`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from .overlay import write_overlay
from .segment import Segment
from .timeline_files import TIMELINE_CSV, TIMELINE_JSONL, TimelineWriter, read_segments
from .timeline_plot import write_timeline_plot

TIMELINE_PNG = "timeline.png"


@dataclass
class TimelineSummary:
    segments: int = 0
    statuses: Counter = field(default_factory=Counter)
    media_seconds: float = 0.0
    stats: dict[str, float] = field(default_factory=dict)
    ended: str = ""  # why the stream ended early, if it did
    files: list[Path] = field(default_factory=list)

    def print(self, console: Console) -> None:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        compute = sum(self.stats.values())
        speed = f", {self.media_seconds / compute:.1f}x real time" if compute > 0 else ""
        console.print(
            f"{self.segments} segments ({statuses or 'none'}) over {self.media_seconds:.1f} s of media{speed}"
        )
        if self.ended:
            console.print(f"the source ended early: {self.ended}")
        for path in self.files:
            console.print(f"wrote {path}")


def segment_line(segment: Segment) -> str:
    span = f"{segment.start:8.2f}-{segment.end:8.2f} s"
    if not segment.ok:
        return f"{span}  {segment.status.value:8s}  {segment.reason}"
    p = (segment.probabilities or {}).get(segment.label or "", 0.0)
    seen = "+".join(m for m, has in segment.present.items() if has) or "-"
    return f"{span}  {segment.label:10s} {p:5.2f}  ({seen})"


def run_timeline(
    session: Any,
    source: str,
    folder: Path,
    settings: Any,
    console: Console,
    overlay: Path | None = None,
    progress: bool = True,
) -> TimelineSummary:
    """Stream `source` into `folder`; the files hold every segment made, however the run ends."""
    summary = TimelineSummary()
    stream = session.stream(source, settings=settings)
    console.print(f"{stream.window:g} s windows every {stream.hop:g} s", highlight=False)
    heads = list(session.manifest.heads)
    with TimelineWriter(folder, session.labels, heads, source) as writer:
        summary.files = [folder / TIMELINE_JSONL, folder / TIMELINE_CSV]
        try:
            for segment in stream:
                writer.write(segment)
                summary.segments += 1
                summary.statuses[segment.status.value] += 1
                if segment.start == segment.end and not segment.ok:
                    summary.ended = segment.reason
                if stream.live or not progress:
                    console.print(segment_line(segment), highlight=False)
                elif summary.segments % 60 == 0:
                    console.print(f"{segment.end:.0f} s read, {summary.segments} segments", highlight=False)
        finally:
            stream.close()
            summary.media_seconds, summary.stats = stream.media_seconds, stream.stats
    if summary.segments:
        _views(folder, source, stream.live, overlay, summary, console)
    return summary


def _views(
    folder: Path, source: str, live: bool, overlay: Path | None, summary: TimelineSummary, console: Console
) -> None:
    # the segments are read back from the file, so the stream itself never held them all
    write_timeline_plot(read_segments(folder / TIMELINE_JSONL), folder / TIMELINE_PNG)
    summary.files.append(folder / TIMELINE_PNG)
    if overlay is None:
        return
    if live:
        console.print(f"no {overlay}: an overlay is drawn on a file, and a live source cannot be read twice")
    else:
        write_overlay(source, list(read_segments(folder / TIMELINE_JSONL)), overlay)
        summary.files.append(overlay)
