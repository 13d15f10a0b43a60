"""The progress bar of long clip-by-clip work (feature extraction, demo generation)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class ClipRateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} clips/s" if speed else "", style="progress.data.speed")


def clip_progress(console: Console | None = None, enabled: bool = True) -> Progress:
    """Bar, done/total, clips per second, elapsed and remaining time, then the task's `note` field
    (running counts of statuses and cache hits)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        ClipRateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
        disable=not enabled,
    )
