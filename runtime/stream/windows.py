"""Windows over the running feature streams: a window is a slice of the rows already computed, so
overlapping windows cost no extraction, only a copy of their rows.

Window k covers [k * hop, k * hop + length) seconds of the source. The buffer keeps the rows from
the earliest window not yet cut onward and drops the rest, so it holds about one window of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..contracts import AUDIO_DIM, ClipFeatures
from .audio import AudioRows
from .source import Fault
from .video import VideoRows


@dataclass(frozen=True)
class Window:
    index: int
    start: float
    end: float

    @property
    def clip_id(self) -> str:
        return f"{self.start:.2f}-{self.end:.2f}"


class WindowGrid:
    def __init__(self, length: float, hop: float):
        if length <= 0 or hop <= 0:
            raise ValueError(f"window and hop must be > 0 seconds, got {length} and {hop}")
        self.length, self.hop = length, hop
        self.next = 0  # index of the next window to cut

    def window(self, k: int, duration: float | None = None) -> Window:
        start = k * self.hop
        end = start + self.length
        return Window(k, start, min(end, duration) if duration is not None else end)

    def upcoming(self) -> Window:
        return self.window(self.next)

    def last_ones(self, duration: float) -> list[Window]:
        """The windows left at the end of a source `duration` seconds long: those that start before it,
        the last one cut short; none for a tail of less than half a hop past the previous window."""
        out = []
        slack = min(self.hop, self.length) / 2
        while True:
            w = self.window(self.next, duration)
            covered = self.next > 0 and self.window(self.next - 1).end >= duration - slack
            if w.start >= duration or covered:
                return out
            out.append(w)
            self.next += 1


class FeatureBuffer:
    """The running audio rows (indexed from the audio's first sample) and video rows (timed)."""

    def __init__(self, video_dim: int, audio_fps: float):
        self.video_dim, self.audio_fps = video_dim, audio_fps
        self.audio_start: float | None = None
        self.audio_first = 0  # row index of audio[0]
        self.audio = np.zeros((0, AUDIO_DIM), np.float32)
        self.audio_mask = np.zeros(0, bool)
        self.video_times = np.zeros(0, np.float64)
        self.video = np.zeros((0, video_dim), np.float32)
        self.video_mask = np.zeros(0, bool)
        self.faults: list[Fault] = []

    def add_audio(self, start: float, rows: AudioRows) -> None:
        if self.audio_start is None:
            self.audio_start = start
        self.audio = np.concatenate([self.audio, rows.values])
        self.audio_mask = np.concatenate([self.audio_mask, rows.mask])

    def add_video(self, rows: VideoRows) -> None:
        self.video_times = np.concatenate([self.video_times, rows.times])
        self.video = np.concatenate([self.video, rows.values.reshape(len(rows.times), self.video_dim)])
        self.video_mask = np.concatenate([self.video_mask, rows.mask])

    def _audio_index(self, t: float) -> int:
        assert self.audio_start is not None
        return max(0, round((t - self.audio_start) * self.audio_fps) - self.audio_first)

    def cut(self, window: Window) -> ClipFeatures:
        if self.audio_start is not None:
            a, b = self._audio_index(window.start), self._audio_index(window.end)
            audio, audio_mask = self.audio[a:b], self.audio_mask[a:b]
        else:
            audio, audio_mask = self.audio[:0], self.audio_mask[:0]
        keep = (self.video_times >= window.start) & (self.video_times < window.end)
        clip = ClipFeatures(
            window.clip_id, audio.copy(), audio_mask.copy(), self.video[keep], self.video_mask[keep].copy()
        )
        clip.info["start"], clip.info["end"] = window.start, window.end
        return clip

    def faults_in(self, window: Window) -> list[Fault]:
        return [f for f in self.faults if f.start < window.end and f.end > window.start]

    def drop_before(self, t: float) -> None:
        if self.audio_start is not None:
            n = self._audio_index(t)
            if n > 0:
                self.audio, self.audio_mask = self.audio[n:], self.audio_mask[n:]
                self.audio_first += n
        keep = self.video_times >= t
        if not keep.all():
            self.video_times, self.video = self.video_times[keep], self.video[keep]
            self.video_mask = self.video_mask[keep]
        self.faults = [f for f in self.faults if f.end > t]
