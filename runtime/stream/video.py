"""Face embeddings over the running video, once per frame, a block of frames at a time.

Frames wait in a block until it is full (`block` frames) or a window needs them (`flush_before`);
the block becomes a job, tracked (the front end's `track_faces`: the detector on every k-th frame and
on the block's last) and embedded by `compute` (in the stream's video thread), then its pixels are
dropped. Only the block being filled and the jobs in flight hold frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..media.faces import track_faces
from ..media.picture import Picture


@dataclass
class VideoJob:
    times: list[float]
    frames: list[Picture]


@dataclass
class VideoRows:
    times: np.ndarray  # float64 [n] seconds from the source's start
    values: np.ndarray  # float32 [n, Dv]
    mask: np.ndarray  # bool [n]: a face was found


class RunningVideo:
    def __init__(self, detector: Any, embedder: Any, every: int, block: int):
        self.detector, self.embedder, self.every, self.block = detector, embedder, every, max(1, block)
        self.frames: list[Picture] = []
        self.times: list[float] = []
        self.seen_until: float | None = None  # time of the newest frame received

    def push(self, time: float, picture: Picture) -> list[VideoJob]:
        """Take a frame; returns the block to compute when it is full."""
        self.frames.append(picture)
        self.times.append(time)
        self.seen_until = time if self.seen_until is None else max(self.seen_until, time)
        return [self._job(len(self.frames))] if len(self.frames) >= self.block else []

    def first_waiting(self) -> float | None:
        """Time of the oldest frame not yet handed out as a job."""
        return self.times[0] if self.times else None

    def flush_before(self, t: float) -> list[VideoJob]:
        n = sum(1 for x in self.times if x < t)
        return [self._job(n)] if n else []

    def finish(self) -> list[VideoJob]:
        return [self._job(len(self.frames))] if self.frames else []

    def _job(self, n: int) -> VideoJob:
        job = VideoJob(self.times[:n], self.frames[:n])
        del self.frames[:n], self.times[:n]
        return job

    def compute(self, job: VideoJob) -> VideoRows:
        """The block's rows. Jobs may run in another thread (one at a time: the detector's tracker state
        and the embedder are not shared), while this object takes new frames."""
        track = track_faces(job.frames, self.detector, self.every)
        values = np.asarray(self.embedder(job.frames, track), np.float32)
        job.frames = []  # the pixels are done with
        return VideoRows(np.asarray(job.times, np.float64), values, np.asarray(track.valid, bool))
