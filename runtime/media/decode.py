"""Decode one media file with PyAV, in one pass: audio to mono float32 at 16 kHz, video to pictures
(RGB or grey on demand, `picture.py`) with their timestamps.

Whatever FFmpeg reads works (mp4, mov, mkv, avi, flv, wav, flac, ...). Frames come back upright: a
phone stores portrait video sideways with a rotation for the player (a display matrix, or in older
files a `rotate` tag), and that rotation is applied here. A file that gives no usable
stream raises `MediaError`, whose message is the per-clip reason; problems that still leave usable
data (a stream that stops early, a long clip cut at `max_seconds`) are kept as `notes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.common.optional import require

from .picture import Picture


class MediaError(Exception):
    """A file that yields no features; str(err) says why, in words for a per-clip report."""


@dataclass
class DecodedMedia:
    audio: np.ndarray | None  # float32 [N] mono at audio_rate; None: the file has no audio stream
    audio_rate: int
    frames: list[Picture]  # upright, longer side <= max_side; RGB or grey on demand
    frame_times: np.ndarray  # float64 [T] seconds from the container's start
    has_video_stream: bool
    audio_start: float = 0.0  # seconds from the container's start to the first audio sample
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        """Mean frame rate of the decoded frames (0 when there are fewer than two)."""
        t = self.frame_times
        return float((len(t) - 1) / (t[-1] - t[0])) if len(t) > 1 and t[-1] > t[0] else 0.0

    @property
    def duration(self) -> float:
        audio = self.audio_start + len(self.audio) / self.audio_rate if self.audio is not None else 0.0
        video = self.frame_times[-1] + 1 / (self.fps or 25.0) if len(self.frame_times) else 0.0
        return float(max(audio, video))


def too_long_reason(seconds: float, max_seconds: float, at_least: bool = False) -> str:
    return (
        f"clip is {'over ' if at_least else ''}{seconds:.1f} s long, more than max_seconds={max_seconds:g}: "
        "for emotions over time run `auxformer-infer FILE --timeline` (or Session.stream); or cut it into "
        "utterances, or set long_clips='truncate' to keep the first max_seconds"
    )


def decode(
    path: str | Path,
    *,
    audio_rate: int = 16000,
    max_side: int = 480,
    max_seconds: float = 60.0,
    truncate: bool = False,
    threads: int = 1,
) -> DecodedMedia:
    """Decode `path`; frames are downscaled so their longer side is at most `max_side`.

    A clip longer than `max_seconds` (by its declared duration, or found while decoding when the
    container declares none) raises MediaError, or with `truncate` keeps its first `max_seconds`.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise MediaError(f"cannot read the file ({err.strerror})") from None
    if size == 0:
        raise MediaError("empty file (0 bytes)")
    av = require("av")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise MediaError(f"not a readable media file ({short_error(err)})") from None
    with container:
        return _Decoder(av, container, audio_rate, max_side, max_seconds, truncate, threads).run()


class _Decoder:
    def __init__(
        self, av: Any, container: Any, rate: int, max_side: int, max_seconds: float, truncate: bool, threads: int
    ):
        self.av, self.container = av, container
        self.rate, self.max_side, self.max_seconds, self.truncate = rate, max_side, max_seconds, truncate
        self.astream = next(iter(container.streams.audio), None)
        self.vstream = video_stream(av, container)
        self.tag_turns = rotate_tag_turns(self.vstream) if self.vstream is not None else 0
        for stream in (self.astream, self.vstream):
            if stream is not None:
                stream.codec_context.thread_count = threads
        start = container.start_time
        self.origin = start / av.time_base if start is not None else 0.0
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=rate) if self.astream else None
        self.chunks: list[np.ndarray] = []
        self.samples = 0
        self.audio_start: float | None = None
        self.frames: list[Picture] = []
        self.times: list[float] = []
        self.done: set[str] = set()
        self.notes: list[str] = []

    def run(self) -> DecodedMedia:
        if self.astream is None and self.vstream is None:
            raise MediaError("no audio or video stream")
        declared = self.container.duration / self.av.time_base if self.container.duration else None
        if declared and declared > self.max_seconds + 0.5 and not self.truncate:
            raise MediaError(too_long_reason(declared, self.max_seconds))
        streams = [s for s in (self.astream, self.vstream) if s is not None]
        try:
            for packet in self.container.demux(streams):
                if len(self.done) == len(streams):
                    break
                if packet.stream.type in self.done:
                    continue  # past max_seconds: not worth decoding
                for frame in packet.decode():
                    self._take(frame)
            if self.resampler is not None:
                self._keep_audio(self.resampler.resample(None))
        except (self.av.FFmpegError, ValueError) as err:  # ValueError: the audio format changed mid-stream
            if not self.chunks and not self.frames:
                raise MediaError(f"corrupt media ({short_error(err)})") from None
            self.notes.append(f"decoding stopped early at {self._position():.2f} s ({short_error(err)})")
        if self.truncate and self.done:
            self.notes.append(f"truncated to the first {self.max_seconds:g} s (long_clips='truncate')")
        if not self.chunks and not self.frames:
            raise MediaError("no decodable audio or video")
        audio = None
        if self.astream is not None:
            audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
            limit = int(self.max_seconds * self.rate)
            audio = audio[:limit] if self.truncate else audio
        return DecodedMedia(
            audio=audio,
            audio_rate=self.rate,
            frames=self.frames,
            frame_times=np.asarray(self.times, np.float64),
            has_video_stream=self.vstream is not None,
            audio_start=self.audio_start or 0.0,
            notes=self.notes,
        )

    def _take(self, frame: Any) -> None:
        kind = "audio" if isinstance(frame, self.av.AudioFrame) else "video"
        if kind in self.done:
            return
        t = (frame.time if frame.time is not None else self._position()) - self.origin
        if t > self.max_seconds:
            if not self.truncate:
                raise MediaError(too_long_reason(self.max_seconds, self.max_seconds, at_least=True))
            self.done.add(kind)
            return
        if kind == "audio":
            if self.audio_start is None:
                self.audio_start = max(t, 0.0)
            self._keep_audio(self.resampler.resample(frame))
        else:
            self.frames.append(Picture.of_frame(frame, self.max_side, upright_turns(frame, self.tag_turns)))
            self.times.append(t)

    def _keep_audio(self, frames: list[Any]) -> None:
        for out in frames:
            samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            self.chunks.append(samples)
            self.samples += len(samples)

    def _position(self) -> float:
        audio = self.samples / self.rate + (self.audio_start or 0.0)
        return max(audio, self.times[-1] if self.times else 0.0)


def video_stream(av: Any, container: Any) -> Any:
    """The container's first real video stream, or None: cover art in audio files is a one-picture
    "video" stream, not video evidence."""
    return next((s for s in container.streams.video if not is_attached_picture(av, s)), None)


def upright_turns(frame: Any, tag_turns: int) -> int:
    """Quarter turns counterclockwise (`np.rot90`) that show a decoded video frame upright: its display
    matrix (per frame: it may change mid-stream) wins over the stream's legacy tag (`rotate_tag_turns`)."""
    rotation = getattr(frame, "rotation", 0) or 0  # degrees counterclockwise, as FFmpeg reports them
    return round(rotation / 90) % 4 if rotation else tag_turns


def rotate_tag_turns(stream: Any) -> int:
    """Quarter turns counterclockwise that a legacy `rotate` tag asks for (the tag counts degrees
    clockwise, as the ffmpeg tool wrote it before display matrices); 0 when absent or unreadable."""
    tag = next((v for k, v in stream.metadata.items() if k.lower() == "rotate"), None)
    try:
        return -round(float(tag) / 90) % 4 if tag is not None else 0
    except (ValueError, OverflowError):  # "abc", "nan", "inf"
        return 0


def is_attached_picture(av: Any, stream: Any) -> bool:
    flag = getattr(getattr(av.stream, "Disposition", None), "attached_pic", None)
    return bool(flag is not None and stream.disposition & flag)


def short_error(err: BaseException) -> str:
    # FFmpeg errors carry errno and file name in str(); the reason needs only the message
    text = getattr(err, "strerror", None) or str(err)
    return text if len(text) <= 160 else text[:157] + "..."
