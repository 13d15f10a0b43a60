"""A source -> Segments, lazily: the stream's pipeline (source -> running features -> windows ->
the model) and what a window's segment says when something went wrong.

Files are read as fast as they decode, and complete windows are predicted `batch_size` at a time
for throughput; a live source's windows are predicted one by one as soon as each is complete, for
latency. Decoding, openSMILE, the faces and the model each run in a thread of their own, so they
overlap on a machine with more than one core; segments come out in time order all the same.
Faults: a window overlapping a stretch the decoder could not read is failed with the
reason; a source that stalls, drops or breaks off ends the stream with one failed segment saying
why (after the windows complete before it), so a caller never waits past `stall_timeout`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..contracts import ClipFeatures, Status
from ..segment import Segment
from .audio import AudioJob, AudioRows, RunningAudio
from .source import AudioChunk, End, Fault, MediaSource, SourceInfo, SourceOptions, VideoFrame
from .vad import VadSettings, VoiceActivity
from .video import RunningVideo, VideoJob, VideoRows
from .windows import FeatureBuffer, Window, WindowGrid
from .worker import OrderedWorker

# Window length: the model's typical training clip (its profile's `opt` audio length, rounded up to
# half seconds), which measured best on the demo (README, "Timelines"); the paper's 2.5-3 s clips
# when the manifest records no lengths.
FALLBACK_WINDOW = 3.0
# Hop: two thirds of the window, in half seconds (3-s windows every 2 s, 1.5-s every 1 s). A window's
# prediction does not depend on the hop (its rows are a slice of the running features), so the hop only
# sets how densely the timeline samples: inference per media second is window / hop, and a change is
# placed to within a hop. Measured on five demo recordings (3-6 s per emotion, README "Timelines"), 3-s
# windows: the label over time right 50.7 % of the time with a 1-s hop, 50.1 % with 2 s, 48.9 % with 3 s,
# at half the inference of a 1-s hop; every instant stays inside a window, a third of it inside two.
HOP_OF_WINDOW = 2 / 3


def default_hop(window: float) -> float:
    return max(0.5, round(2 * HOP_OF_WINDOW * window) / 2)


def default_window(manifest: Any, audio_fps: float) -> float:
    """`audio_fps`: the model's descriptor rows per second (`FeatureSettings.audio_fps`)."""
    shapes = getattr(manifest, "shapes", None)
    if shapes is None:
        return FALLBACK_WINDOW
    return max(1.0, math.ceil(2 * shapes.audio_len.opt / audio_fps) / 2)


@dataclass
class StreamSettings:
    window: float | None = None  # seconds; None: default_window(the model's manifest)
    hop: float | None = None  # seconds; None: default_hop(the window)
    batch_size: int = 16  # windows per inference batch for files (live: 1)
    min_speech: float = 0.25  # seconds of speech a window needs for its audio to count as present
    vad: VadSettings = field(default_factory=VadSettings)
    source: SourceOptions = field(default_factory=SourceOptions)
    # seconds of signal openSMILE sees before a block (its RASTA filters and pitch smoother settle: with
    # 3 s, 124 of the 130 descriptors match a whole-file pass to float precision, worst row 1e-3 relative
    # with 1 s; the other six drift by design, tests/test_stream.py) and after it (the live delay of the rows)
    audio_left: float = 3.0
    audio_right: float = 0.3
    # seconds of audio per openSMILE call (the context is paid per call: 30 s took 15 % less CPU than 10 s,
    # 60 s no less than 30 s); live, a block also ends where a window ends, so the window need not wait
    audio_block: float = 30.0
    video_block: float = 2.0  # seconds of frames tracked and embedded at once for files (bounds the frames held)
    live_block: float = 0.25  # and for live sources (latency)

    def __post_init__(self) -> None:
        if (self.window is not None and self.window <= 0) or (self.hop is not None and self.hop <= 0):
            raise ValueError(f"window and hop must be > 0 seconds, got {self.window} and {self.hop}")


class SegmentStream(Iterator[Segment]):
    """The segments of one source, lazily; `stats` holds seconds of compute per stage so far (CPU time
    of the thread doing it: decode in the reader, audio, video and inference each in its worker (the
    model's other intra-op threads are not counted), main in the caller's) and `media_seconds` how much
    was read.
    `close()` stops reading the source (as leaving a `for` loop over it early does, once collected)."""

    def __init__(self, session: Any, source: str | os.PathLike, settings: StreamSettings):
        self._pipeline = _Pipeline(session, source, settings)
        self._segments = self._pipeline.run()
        self.live = self._pipeline.live
        self.window, self.hop = self._pipeline.grid.length, self._pipeline.grid.hop

    def __next__(self) -> Segment:
        return next(self._segments)

    def close(self) -> None:
        self._segments.close()

    @property
    def stats(self) -> dict[str, float]:
        return self._pipeline.stats

    @property
    def media_seconds(self) -> float:
        return self._pipeline.position


def stream_segments(session: Any, source: str | os.PathLike, settings: StreamSettings) -> SegmentStream:
    """Segments of `source` for `session` (a runtime Session), in time order; see the module docstring."""
    return SegmentStream(session, source, settings)


class _Pipeline:
    """The caller's thread reads the source's events and hands them on; openSMILE, the faces and the
    model each run in a thread of their own (`worker.OrderedWorker`), so on a machine with cores to
    spare they overlap with each other and with decoding."""

    def __init__(self, session: Any, source: str | os.PathLike, settings: StreamSettings):
        from ..features import FeatureExtractor

        self.session, self.settings = session, settings
        fs = session.front_end.settings  # the model's front end (FeatureSettings), checked against it
        self.fps = fs.audio_fps  # descriptor rows per second: its audio_step_ms, not the default's
        self.extractor = FeatureExtractor(fs)  # one per stream: its stages are not shared between threads
        self.source = MediaSource(source, settings.source, fs.audio_rate, fs.max_side, fs.threads)
        self.live = self.source.live
        vad = VoiceActivity(settings.vad, self.extractor.audio.names, self.fps)
        self.audio = RunningAudio(
            self.extractor.audio,
            vad,
            fs.audio_rate,
            self.fps,
            settings.audio_block,
            settings.audio_left,
            settings.audio_right,
        )
        video_block = settings.live_block if self.live else settings.video_block
        frames_per_block = max(fs.detect_every, round(video_block * 25))  # the frame rate is known only later
        self.video = RunningVideo(self.extractor.detector, self.extractor.embedder, fs.detect_every, frames_per_block)
        self.buffer = FeatureBuffer(session.manifest.video_dim, self.fps)
        window = settings.window or default_window(session.manifest, self.fps)
        self.grid = WindowGrid(window, settings.hop or default_hop(window))
        self.info: SourceInfo | None = None
        self.audio_ended = self.video_ended = False
        self.pending: list[tuple[Window, ClipFeatures, str]] = []  # window, its rows, why it failed ("" if not)
        self.position = 0.0  # the newest source time seen
        self.main_cpu = 0.0  # the caller's thread: reading events, cutting windows
        self.audio_worker = OrderedWorker("audio", self.audio.compute)
        self.video_worker = OrderedWorker("video", self.video.compute)
        self.infer_worker = OrderedWorker("infer", self._segments)
        self.audio_until: float | None = None  # source time up to which the audio rows are in the buffer

    @property
    def stats(self) -> dict[str, float]:
        return {
            "decode": self.source.cpu_seconds,
            "audio": self.audio_worker.cpu_seconds,
            "video": self.video_worker.cpu_seconds,
            "infer": self.infer_worker.cpu_seconds,
            "main": self.main_cpu,
        }

    def _add_audio(self, done: list[tuple[AudioJob, AudioRows]]) -> None:
        for _, rows in done:
            start = self.audio.start or 0.0
            self.buffer.add_audio(start, rows)
            self.audio_until = start + (rows.first + len(rows.values)) / self.fps

    def _add_video(self, done: list[tuple[VideoJob, VideoRows]]) -> None:
        for _, rows in done:
            self.buffer.add_video(rows)

    def _submit_audio(self, jobs: list[AudioJob]) -> None:
        for job in jobs:
            self._add_audio(self.audio_worker.submit(job))

    def _submit_video(self, jobs: list[VideoJob]) -> None:
        for job in jobs:
            self._add_video(self.video_worker.submit(job))

    def run(self) -> Iterator[Segment]:
        """The segments, with the caller's thread's CPU time counted between them."""
        segments = self._run()
        t = time.thread_time()
        try:
            for segment in segments:
                self.main_cpu += time.thread_time() - t
                yield segment
                t = time.thread_time()
            self.main_cpu += time.thread_time() - t
        finally:
            segments.close()  # leaving early: stop the source and the workers now

    def _run(self) -> Iterator[Segment]:
        events = self.source.events()
        try:
            for event in events:
                if isinstance(event, SourceInfo):
                    self.info = event
                    self.audio_ended, self.video_ended = not event.has_audio, not event.has_video
                elif isinstance(event, AudioChunk):
                    self.position = max(self.position, event.start + len(event.samples) / self.audio.rate)
                    need = self.grid.upcoming().end if self.live else None
                    self._submit_audio(self.audio.push(event.start, event.samples, need))
                elif isinstance(event, VideoFrame):
                    self.position = max(self.position, event.time)
                    self._submit_video(self.video.push(event.time, event.picture))
                    if self.live:
                        self._submit_video(self.video.flush_before(self.grid.upcoming().end))
                elif isinstance(event, Fault):
                    self.buffer.faults.append(event)
                elif isinstance(event, End):
                    yield from self._end(event)
                    return
                yield from self._ready()
        finally:
            events.close()
            for worker in (self.audio_worker, self.video_worker, self.infer_worker):
                worker.close()

    def _video_waits_from(self) -> float | None:
        """Time of the oldest frame whose row is not in the buffer yet."""
        jobs = self.video_worker.waiting
        return jobs[0].times[0] if jobs else self.video.first_waiting()

    def _complete(self, window: Window) -> bool:
        audio = self.audio_ended or (self.audio_until is not None and self.audio_until >= window.end)
        if self.video_ended:
            return audio
        seen, waits = self.video.seen_until, self._video_waits_from()
        video = seen is not None and seen >= window.end and (waits is None or waits >= window.end)
        return audio and video

    def _ready(self) -> Iterator[Segment]:
        self._add_audio(self.audio_worker.results())
        self._add_video(self.video_worker.results())
        while self._complete(window := self.grid.upcoming()):
            self.grid.next += 1
            self._take(window)
        size = 1 if self.live else self.settings.batch_size
        if len(self.pending) >= size:
            yield from self._predict()
        for _, segments in self.infer_worker.results():
            yield from segments

    def _take(self, window: Window) -> None:
        faults = self.buffer.faults_in(window)
        broken = "; ".join(dict.fromkeys(f.reason for f in faults[:3]))
        self.pending.append((window, self.buffer.cut(window), broken))
        self.buffer.drop_before(window.start + self.grid.hop)  # what the next window needs

    def _end(self, end: End) -> Iterator[Segment]:
        self._submit_audio(self.audio.finish())
        self._submit_video(self.video.finish())
        self._add_audio(self.audio_worker.results(wait_all=True))
        self._add_video(self.video_worker.results(wait_all=True))
        duration = self.position
        if self.info is not None and self.info.duration and not end.failed:
            duration = max(duration, min(self.info.duration, self.position + 0.1))
        if self.info is not None and (self.audio_until or self.video.seen_until is not None):
            for window in self.grid.last_ones(duration):
                self._take(window)
        yield from self._predict()
        for _, segments in self.infer_worker.results(wait_all=True):
            yield from segments
        if end.failed:
            yield Segment(duration, duration, Status.FAILED, end.reason)

    def _predict(self) -> Iterator[Segment]:
        """Hand the pending windows to the model's thread; yields the segments that had to be waited for."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        for _, segments in self.infer_worker.submit(pending):
            yield from segments

    def _segments(self, pending: list[tuple[Window, ClipFeatures, str]]) -> list[Segment]:
        clips = [self._present(clip) for _, clip, broken in pending if not broken]
        predictions = iter(self.session.predict(clips, batch_size=self.settings.batch_size) if clips else [])
        out = []
        for window, _, broken in pending:
            if broken:
                out.append(Segment(window.start, window.end, Status.FAILED, f"corrupt media in this window: {broken}"))
            else:
                out.append(Segment.of(next(predictions), window.start, window.end))
        return out

    def _present(self, clip: ClipFeatures) -> ClipFeatures:
        """Too little speech in a window is no audio: its rows are masked, and the audio head stays out."""
        if clip.audio_mask.sum() < self.settings.min_speech * self.fps:
            clip.audio_mask[:] = False
            clip.reason = "no speech" if len(clip.audio_mask) else ""
        if not clip.video_mask.any() and len(clip.video_mask):
            clip.reason = "; ".join(r for r in (clip.reason, "no face") if r)
        return clip
