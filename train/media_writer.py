"""Write audio/video files with PyAV: the demo generator's and the tests' clip writer.

The container follows the file suffix, and so do the codecs (`CODECS`), so one call can make the
formats the front end must read: mp4, mov, mkv, avi, flv, and audio-only wav / flac. Every file is
written to a temporary name and renamed, so a reader never sees half a clip.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from auxformer.common import atomic
from auxformer.common.optional import require

# suffix -> (video codec or None for audio-only containers, audio codec)
CODECS: dict[str, tuple[str | None, str]] = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "libopus"),
    ".avi": ("mpeg4", "pcm_s16le"),
    ".flv": ("flv", "libmp3lame"),  # CREMA-D's VideoFlash: Sorenson video + mp3
    ".wav": (None, "pcm_s16le"),
    ".flac": (None, "flac"),
}
FORMATS = {".mkv": "matroska", ".flv": "flv"}
# mp3 in flv only takes these rates; the writer resamples to the nearest one
FLV_RATES = (11025, 22050, 44100)


def write_clip(
    path: str | Path,
    frames: Iterable[np.ndarray] | None,
    fps: float,
    audio: np.ndarray | None,
    audio_rate: int = 16000,
    faststart: bool = True,
    display_rotation: int = 0,
    video_tags: dict[str, str] | None = None,
) -> Path:
    """Write RGB uint8 `frames` [H, W, 3] at `fps` and mono float `audio` in [-1, 1] to `path`.

    Either stream may be None (a silent video or an audio-only file). `faststart` puts the mp4
    index first, as files served on the web do; without it a truncated mp4 is unreadable.
    `display_rotation` (degrees counterclockwise) is stored as the video's display matrix, as phones
    store portrait video; `video_tags` become the video stream's metadata.
    """
    frames = iter(frames) if frames is not None else None
    first = next(frames, None) if frames is not None else None
    if frames is None and audio is None:
        raise ValueError("a clip needs frames, audio or both")
    size = (first.shape[1], first.shape[0]) if first is not None else None
    with media_writer(
        path, size, fps, audio_rate if audio is not None else None, faststart, display_rotation, video_tags
    ) as writer:
        if first is not None:
            for frame in _chain(first, frames):  # type: ignore[arg-type]
                writer.frame(frame)
        if audio is not None:
            writer.audio(audio)
    return Path(path)


class MediaWriter:
    """An open file being written piece by piece: frames and audio chunks in any amounts, in time
    order per stream; the muxer interleaves the two, so a long recording never sits in memory."""

    def __init__(self, av, out, vstream, astream, audio_rate: int):  # type: ignore[no-untyped-def]
        self.av, self.out, self.vstream, self.astream = av, out, vstream, astream
        self.frames = 0
        self.samples = 0  # at the encoder's rate
        self.resampler = None
        if astream is not None:
            # the encoder wants its own sample format, rate and frame size: swresample does all three
            self.resampler = av.AudioResampler(
                format=astream.codec_context.format,
                layout="mono",
                rate=astream.codec_context.sample_rate,
                frame_size=astream.codec_context.frame_size or None,
            )
        self.audio_rate = audio_rate

    def frame(self, rgb: np.ndarray) -> None:
        if self.vstream is None:
            raise ValueError("this file was opened without video")
        vf = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
        vf.pts = self.frames
        self.frames += 1
        self.out.mux(self.vstream.encode(vf))

    def audio(self, samples: np.ndarray) -> None:
        """Append mono float samples in [-1, 1] at the writer's audio rate."""
        if self.astream is None:
            raise ValueError("this file was opened without audio")
        if len(samples) == 0:
            return
        chunk = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
        frame = self.av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
        frame.sample_rate = self.audio_rate
        self._encode(self.resampler.resample(frame))  # type: ignore[union-attr]

    def _encode(self, chunks: list) -> None:  # type: ignore[type-arg]
        rate = self.astream.codec_context.sample_rate
        for chunk in chunks:
            chunk.pts, chunk.time_base = self.samples, Fraction(1, rate)
            self.samples += chunk.samples
            self.out.mux(self.astream.encode(chunk))

    def close(self) -> None:
        if self.vstream is not None:
            self.out.mux(self.vstream.encode(None))
        if self.astream is not None:
            self._encode(self.resampler.resample(None))  # type: ignore[union-attr]
            self.out.mux(self.astream.encode(None))


@contextlib.contextmanager
def media_writer(
    path: str | Path,
    size: tuple[int, int] | None,
    fps: float,
    audio_rate: int | None,
    faststart: bool = True,
    display_rotation: int = 0,
    video_tags: dict[str, str] | None = None,
    keyframe_seconds: float | None = None,
) -> Iterator[MediaWriter]:
    """Open `path` for writing frames of `size` (width, height) at `fps` and/or mono audio at
    `audio_rate` (None: that stream is left out). The file appears at `path` complete, when the block
    ends without an error. `keyframe_seconds` caps the distance between keyframes, so damage to the
    file spoils at most that much video after it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CODECS:
        raise ValueError(f"no codecs known for {suffix!r}; use one of {', '.join(CODECS)}")
    video_codec, audio_codec = CODECS[suffix]
    if size is not None and video_codec is None:
        raise ValueError(f"{suffix} holds audio only")
    av = require("av")
    options = {"movflags": "+faststart"} if faststart and suffix in (".mp4", ".mov") else {}
    container_format = FORMATS.get(suffix, suffix.lstrip("."))
    with atomic.atomic_path(path) as tmp, av.open(str(tmp), "w", format=container_format, options=options) as out:
        vstream = _add_video(out, video_codec, size, fps) if size is not None else None  # type: ignore[arg-type]
        if vstream is not None:
            if display_rotation:
                vstream.set_display_rotation(display_rotation)
            vstream.metadata.update(video_tags or {})
            if keyframe_seconds:
                vstream.codec_context.gop_size = max(1, round(keyframe_seconds * fps))
        astream = _add_audio(out, audio_codec, audio_rate, suffix) if audio_rate is not None else None
        writer = MediaWriter(av, out, vstream, astream, audio_rate or 0)
        yield writer
        writer.close()


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest


def _add_video(out, codec: str, size: tuple[int, int], fps: float):  # type: ignore[no-untyped-def]
    width, height = size
    if codec in ("libx264", "mpeg4") and (height % 2 or width % 2):
        raise ValueError(f"{codec} needs even frame sizes, got {width}x{height}")
    stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    if codec == "libx264":
        stream.options = {"preset": "ultrafast", "crf": "20"}
    stream.codec_context.time_base = Fraction(1, 1) / stream.codec_context.framerate
    return stream


def _add_audio(out, codec: str, rate: int, suffix: str):  # type: ignore[no-untyped-def]
    if suffix == ".flv":
        rate = min(FLV_RATES, key=lambda r: abs(r - rate))
    stream = out.add_stream(codec, rate=rate)
    stream.layout = "mono"
    return stream
