"""A media source read in a background thread, as a stream of events: audio chunks (16 kHz mono),
upright RGB frames, decode faults, and the end (normal, or why it stopped).

A source is a file of any length, or anything FFmpeg opens live: `rtsp://`, `http(s)://`, `udp://`
URLs, a capture device (`format="v4l2"`, `"avfoundation"`, `"dshow"`, with `options`), a FIFO, or a
pipe (`"-"` or `"pipe:0"` for stdin). The reader thread opens and demuxes it and hands events over a
bounded queue, so at most a few seconds of decoded media are ever held, whatever the input's length.

Never a hang: the consumer waits at most `stall_timeout` seconds for the next event (opening
included), then ends the stream with a reason. FFmpeg cannot always be interrupted inside a
blocking read (a FIFO whose writer went quiet), so a stalled reader thread is abandoned (a daemon
thread: it ends when the read returns or the process exits); network sources are also given
FFmpeg's own read timeout, which ends the thread itself.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.common.optional import require

from ..media.decode import rotate_tag_turns, short_error, upright_turns, video_stream
from ..media.picture import Picture

LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt", "rtp", "pipe")
GAP_S = 0.1  # an audio timestamp this far past the samples so far is a gap: filled with silence, and a fault
LIVE_PROBE_US = 1_000_000  # microseconds of a live stream FFmpeg reads to find its streams
VIDEO_GAP_S = 1.0  # frames this far apart are a gap too (variable frame rates skip less than this)


@dataclass
class SourceInfo:
    has_audio: bool
    has_video: bool
    live: bool
    duration: float | None  # declared, seconds; None for live sources and containers that declare none


@dataclass
class AudioChunk:
    start: float  # seconds from the source's start
    samples: np.ndarray  # float32 mono at the reader's rate


@dataclass
class VideoFrame:
    time: float
    picture: Picture  # upright; RGB or grey on demand


@dataclass
class Fault:
    """A stretch of the source that could not be decoded (a corrupt packet)."""

    start: float
    end: float
    reason: str


@dataclass
class End:
    reason: str = ""  # "" when the source simply ended
    failed: bool = False  # it stopped on an error (stall, drop, corrupt container), not at its end


Event = SourceInfo | AudioChunk | VideoFrame | Fault | End


@dataclass
class SourceOptions:
    format: str | None = None  # FFmpeg input format (capture devices: v4l2, alsa, avfoundation, dshow, ...)
    options: dict[str, str] = field(default_factory=dict)  # FFmpeg demuxer options (video_size, framerate, ...)
    live: bool | None = None  # None: live for URLs, FIFOs, pipes, devices and a given format; files are not
    stall_timeout: float = 10.0  # seconds without any data before the stream ends as stalled
    queue_events: int = 48  # decoded events held between the reader and the consumer (bounds memory)


def is_live(source: str | os.PathLike, options: SourceOptions) -> bool:
    if options.live is not None:
        return options.live
    if options.format is not None:
        return True
    text = str(source)
    url = "://" in text and text.split("://", 1)[0].lower() in LIVE_SCHEMES
    if text == "-" or url or text.startswith("pipe:"):
        return True
    try:
        mode = os.stat(text).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


class MediaSource:
    """Iterate `events()` once; `close()` (or leaving the generator) stops the reader."""

    def __init__(
        self, source: str | os.PathLike, options: SourceOptions, audio_rate: int, max_side: int, threads: int = 1
    ):
        self.source = "pipe:0" if str(source) == "-" else str(source)
        self.options = options
        self.live = is_live(source, options)
        self.rate, self.max_side, self.threads = audio_rate, max_side, threads
        self._queue: queue.Queue[Event] = queue.Queue(maxsize=options.queue_events)
        self._stop = threading.Event()
        self._opened = False  # the reader got past opening the source
        self.cpu_seconds = 0.0  # the reader thread's CPU time (opening, demuxing, decoding, scaling)
        self._thread = threading.Thread(target=self._read, name=f"source {self.source}", daemon=True)

    def events(self) -> Iterator[Event]:
        self._thread.start()
        timeout = self.options.stall_timeout
        try:
            while True:
                try:
                    event = self._queue.get(timeout=timeout)
                except queue.Empty:
                    what = "opening it" if not self._opened else "the last data"
                    yield End(f"source stalled: nothing for {timeout:g} s after {what} (stall_timeout)", failed=True)
                    return
                yield event
                if isinstance(event, End):
                    return
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()

    # the reader thread ------------------------------------------------------------------------------

    def _put(self, event: Event) -> bool:
        """Hand `event` over; False when the consumer has gone (stop reading)."""
        while not self._stop.is_set():
            try:
                self._queue.put(event, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        t = time.thread_time()
        try:
            end = self._demux(t)
        except BaseException as err:  # whatever happens here is the stream's end reason
            end = End(f"reading the source failed: {type(err).__name__}: {short_error(err)}", failed=True)
        self.cpu_seconds = time.thread_time() - t
        self._put(end)

    def _open(self, av: Any) -> Any:
        options = dict(self.options.options)
        if self.live:  # FFmpeg probes 5 s of a stream before the first frame by default: the first window waits
            options.setdefault("analyzeduration", str(LIVE_PROBE_US))
        kwargs: dict[str, Any] = {"metadata_errors": "ignore", "options": options}
        if self.options.format:
            kwargs["format"] = self.options.format
        if "://" in self.source:  # FFmpeg's own open / read timeouts end a dead network read
            kwargs["timeout"] = (self.options.stall_timeout, self.options.stall_timeout)
        elif not self.live and not Path(self.source).exists():
            raise FileNotFoundError(f"no such file: {self.source}")
        return av.open(self.source, **kwargs)

    def _demux(self, t0: float) -> End:
        av = require("av")
        try:
            container = self._open(av)
        except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as err:
            return End(f"cannot open the source ({short_error(err)})", failed=True)
        with container:
            astream = next(iter(container.streams.audio), None)
            vstream = video_stream(av, container)
            if astream is None and vstream is None:
                return End("no audio or video stream", failed=True)
            for s in (astream, vstream):
                if s is not None:
                    s.codec_context.thread_count = self.threads
            declared = container.duration / av.time_base if container.duration and not self.live else None
            info = SourceInfo(astream is not None, vstream is not None, self.live, declared)
            if not self._put(info):
                return End()
            reader = _StreamReader(av, container, self.rate, self.max_side, vstream)
            self._opened = True
            streams = [s for s in (astream, vstream) if s is not None]
            try:
                for packet in container.demux(streams):
                    self.cpu_seconds = time.thread_time() - t0
                    for event in reader.decode(packet):
                        if not self._put(event):
                            return End()
                for event in reader.flush():
                    if not self._put(event):
                        return End()
            except (av.FFmpegError, ValueError, OSError) as err:
                at = reader.position()
                if self.live:
                    return End(f"the source dropped at {at:.2f} s ({short_error(err)})", failed=True)
                return End(f"decoding stopped early at {at:.2f} s ({short_error(err)})", failed=True)
        return End()


class _StreamReader:
    """Packets -> events, with times from the container's start (or the first packet, live)."""

    def __init__(self, av: Any, container: Any, rate: int, max_side: int, vstream: Any):
        self.av, self.rate, self.max_side = av, rate, max_side
        self.tag_turns = rotate_tag_turns(vstream) if vstream is not None else 0
        start = container.start_time
        self.origin: float | None = start / av.time_base if start is not None else None
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        self.audio_start: float | None = None
        self.samples = 0
        self.last_video = 0.0
        self.seen_video = False

    def _time(self, t: float | None) -> float | None:
        if t is None:
            return None
        if self.origin is None:
            self.origin = t
        return t - self.origin

    def position(self) -> float:
        audio = (self.audio_start or 0.0) + self.samples / self.rate
        return max(audio, self.last_video)

    def decode(self, packet: Any) -> list[Event]:
        at = self._time(float(packet.pts * packet.time_base) if packet.pts is not None else None)
        try:
            frames = packet.decode()
        except (self.av.FFmpegError, ValueError) as err:
            start = at if at is not None else self.position()
            length = float(packet.duration * packet.time_base) if packet.duration else 0.04
            return [Fault(start, start + length, f"corrupt {packet.stream.type} at {start:.2f} s ({short_error(err)})")]
        out: list[Event] = []
        for frame in frames:
            if isinstance(frame, self.av.AudioFrame):
                out += self._audio(frame)
            else:
                t = self._time(frame.time)
                t = t if t is not None else self.last_video
                if t - self.last_video > VIDEO_GAP_S and self.seen_video:
                    why = f"no video from {self.last_video:.2f} to {t:.2f} s (lost or corrupt data)"
                    out.append(Fault(self.last_video, t, why))
                self.last_video, self.seen_video = t, True
                out.append(VideoFrame(t, Picture.of_frame(frame, self.max_side, upright_turns(frame, self.tag_turns))))
        return out

    def _audio(self, frame: Any) -> list[Event]:
        t = self._time(frame.time)
        out: list[Event] = []
        if self.audio_start is None:
            self.audio_start = max(t or 0.0, 0.0)
        elif t is not None:
            gap = t - (self.audio_start + self.samples / self.rate)
            if gap > GAP_S:  # lost or dropped packets: silence keeps the signal on the clock
                at = self.audio_start + self.samples / self.rate
                out.append(Fault(at, at + gap, f"no audio from {at:.2f} to {at + gap:.2f} s (lost or corrupt data)"))
                out.append(self._chunk(np.zeros(int(gap * self.rate), np.float32)))
        out += [self._chunk(_mono(f)) for f in self._resample(frame)]
        return out

    def _resample(self, frame: Any) -> list[Any]:
        try:
            return self.resampler.resample(frame)
        except ValueError:  # the audio format changed mid-stream: a fresh resampler for the new one
            self.resampler = self.av.AudioResampler(format="flt", layout="mono", rate=self.rate)
            return self.resampler.resample(frame)

    def _chunk(self, samples: np.ndarray) -> AudioChunk:
        chunk = AudioChunk((self.audio_start or 0.0) + self.samples / self.rate, samples)
        self.samples += len(samples)
        return chunk

    def flush(self) -> list[Event]:
        if self.audio_start is None:
            return []
        return [self._chunk(_mono(f)) for f in self.resampler.resample(None)]


def _mono(frame: Any) -> np.ndarray:
    return frame.to_ndarray().reshape(-1).astype(np.float32, copy=False)
