"""Face embeddings over the running video, once per frame, a block of frames at a time.

Frames wait in a block until it is full (`block` frames) or a window needs them (`flush_before`);
a block is tracked (the front end's `track_faces`: the detector on every k-th frame and on the
block's last) and embedded, then its pixels are dropped. Only a block's frames are ever held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..media.faces import track_faces


@dataclass
class VideoRows:
    times: np.ndarray  # float64 [n] seconds from the source's start
    values: np.ndarray  # float32 [n, Dv]
    mask: np.ndarray  # bool [n]: a face was found


class RunningVideo:
    def __init__(self, detector: Any, embedder: Any, every: int, block: int):
        self.detector, self.embedder, self.every, self.block = detector, embedder, every, max(1, block)
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.seen_until: float | None = None  # time of the newest frame received

    def push(self, time: float, rgb: np.ndarray) -> list[VideoRows]:
        self.frames.append(rgb)
        self.times.append(time)
        self.seen_until = time if self.seen_until is None else max(self.seen_until, time)
        return [self._embed(len(self.frames))] if len(self.frames) >= self.block else []

    def done_before(self, t: float) -> bool:
        """Every frame before `t` is final: a frame at or after it has arrived, and none before it waits."""
        if self.seen_until is None or self.seen_until < t:
            return False
        return not self.times or self.times[0] >= t

    def flush_before(self, t: float) -> list[VideoRows]:
        n = sum(1 for x in self.times if x < t)
        return [self._embed(n)] if n else []

    def finish(self) -> list[VideoRows]:
        return [self._embed(len(self.frames))] if self.frames else []

    def _embed(self, n: int) -> VideoRows:
        frames, times = self.frames[:n], self.times[:n]
        del self.frames[:n], self.times[:n]
        track = track_faces(frames, self.detector, self.every)
        values = np.asarray(self.embedder(frames, track), np.float32)
        return VideoRows(np.asarray(times, np.float64), values, np.asarray(track.valid, bool))
