"""Audio descriptors over the running signal, finalized block by block.

openSMILE runs on each new block of the signal with `left` seconds of the signal before it and
`right` seconds after it, and only the block's own rows are kept: the analysis windows, smoothing
and delta regressions at the block's borders see the same samples they would see in one pass over
the whole file, so the rows match a whole-file extraction (tests/test_stream.py: to float
precision), except six deltas no finite context reproduces: openSMILE divides the deltas of the pitch
and voice-quality descriptors (F0, voicing, jitter, shimmer, HNR) by a normaliser that grows from the
start of its run and is never reset, so in one pass over a long file they shrink towards zero; here
they are scaled as for a run of `left` seconds plus the block. Row k is the analysis frame starting
at sample k * rate / fps of the signal, `fps` the front end's rows per second
(`FeatureSettings.audio_fps`: 100 with its default 10-ms step, 62.5 with the paper's 16 ms).
The voice activity detector marks, per row, whether it holds speech; the mask a window gets is
`finite and speech`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..contracts import AUDIO_DIM
from ..media.audio_features import ComParE
from .vad import VoiceActivity


@dataclass
class AudioRows:
    first: int  # index of the first row, counted from the signal's first sample
    values: np.ndarray  # float32 [n, 130], zeros where not finite
    mask: np.ndarray  # bool [n]: finite and speech


@dataclass
class AudioJob:
    first: int  # the block's first row
    signal: np.ndarray  # the block's samples with their context
    keep: slice  # the block's rows among the rows of `signal`
    final: bool  # the signal's end: keep what openSMILE gives


class RunningAudio:
    def __init__(
        self,
        compare: ComParE,
        vad: VoiceActivity,
        rate: int,
        fps: float,
        min_block: float,
        left: float,
        right: float,
    ):
        self.compare, self.vad, self.rate, self.fps = compare, vad, rate, fps
        self.hop = rate / fps  # samples per row
        self.min_block = max(1, round(min_block * fps))
        self.left, self.right = round(left * fps), round(right * fps)
        self.start: float | None = None  # time of the signal's first sample (seconds from the source's start)
        self.signal = np.zeros(0, np.float32)
        self.signal_first = 0  # sample index of self.signal[0]
        self.samples = 0  # samples received
        self.done = 0  # rows handed out as jobs

    def push(self, start: float, samples: np.ndarray, need: float | None = None) -> list[AudioJob]:
        """Take new samples; returns the block to compute (see `compute`) when `min_block` rows have their
        right context, or as soon as the rows before source time `need` have it (a live window's end:
        one block per window, not one per `min_block`, since each block pays for its left context)."""
        if self.start is None:
            self.start = start
        self.signal = np.concatenate([self.signal, samples]) if len(self.signal) else samples
        self.samples += len(samples)
        ready = int((self.samples - self.right * self.hop) // self.hop)  # rows whose right context has arrived
        needed = need is not None and self.done < (need - self.start) * self.fps <= ready
        if ready - self.done < self.min_block and not needed:
            return []
        return [self._job(ready, final=False)]

    def finish(self) -> list[AudioJob]:
        total = int(self.samples // self.hop)
        return [self._job(total, final=True)] if total > self.done else []

    def _sample(self, row: int) -> int:
        return round(row * self.hop)

    def _job(self, upto: int, final: bool) -> AudioJob:
        first_row = max(0, self.done - self.left)
        a = self._sample(first_row) - self.signal_first
        b = self.samples - self.signal_first if final else self._sample(upto + self.right) - self.signal_first
        job = AudioJob(self.done, self.signal[a:b], slice(self.done - first_row, upto - first_row), final)
        self.done = upto
        # keep only the left context the next block needs
        drop = self._sample(max(0, self.done - self.left)) - self.signal_first
        if drop > 0:
            self.signal = self.signal[drop:].copy()
            self.signal_first += drop
        return job

    def compute(self, job: AudioJob) -> AudioRows:
        """The block's rows: openSMILE and the voice activity detector. Jobs may run in another thread
        (one at a time: the openSMILE objects are not shared), while this object takes new samples."""
        chunk, keep = job.signal, job.keep
        raw = self.compare.rows(chunk, self.rate) if len(chunk) >= 0.1 * self.rate else np.zeros((0, AUDIO_DIM))
        speech = self.vad(chunk, raw)
        got = raw[keep]  # openSMILE gives a few rows fewer at the very end: the last frames do not fit
        n = len(got) if job.final else keep.stop - keep.start
        values = np.zeros((n, AUDIO_DIM), np.float32)
        mask = np.zeros(n, bool)
        values[: len(got)] = got
        mask[: len(got)] = np.isfinite(got).all(axis=1) & speech[keep][: len(got)]
        values[~np.isfinite(values).all(axis=1)] = 0.0
        return AudioRows(job.first, values, mask)
