"""Write audio/video files with PyAV: the demo generator's and the tests' clip writer.

The container follows the file suffix, and so do the codecs (`CODECS`), so one call can make the
formats the front end must read: mp4, mov, mkv, avi, flv, and audio-only wav / flac. Every file is
written to a temporary name and renamed, so a reader never sees half a clip.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CODECS:
        raise ValueError(f"no codecs known for {suffix!r}; use one of {', '.join(CODECS)}")
    video_codec, audio_codec = CODECS[suffix]
    if frames is not None and video_codec is None:
        raise ValueError(f"{suffix} holds audio only")
    if frames is None and audio is None:
        raise ValueError("a clip needs frames, audio or both")
    av = require("av")
    options = {"movflags": "+faststart"} if faststart and suffix in (".mp4", ".mov") else {}
    container_format = FORMATS.get(suffix, suffix.lstrip("."))
    with atomic.atomic_path(path) as tmp, av.open(str(tmp), "w", format=container_format, options=options) as out:
        frames = iter(frames) if frames is not None else None
        first = next(frames, None) if frames is not None else None
        vstream = _add_video(out, video_codec, first, fps) if first is not None else None
        if vstream is not None:
            if display_rotation:
                vstream.set_display_rotation(display_rotation)
            vstream.metadata.update(video_tags or {})
        astream = _add_audio(out, audio_codec, audio_rate, suffix) if audio is not None else None
        if vstream is not None:
            for i, frame in enumerate(_chain(first, frames)):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, dtype=np.uint8), format="rgb24")
                vf.pts = i
                out.mux(vstream.encode(vf))
            out.mux(vstream.encode(None))
        if astream is not None:
            _encode_audio(av, out, astream, audio, audio_rate)
    return path


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest


def _add_video(out, codec: str, first: np.ndarray, fps: float):  # type: ignore[no-untyped-def]
    height, width = first.shape[:2]
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


def _encode_audio(av, out, stream, audio: np.ndarray, rate: int) -> None:  # type: ignore[no-untyped-def]
    samples = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)
    frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
    frame.sample_rate = rate
    # the encoder wants its own sample format, rate and frame size: let swresample do all three
    resampler = av.AudioResampler(
        format=stream.codec_context.format,
        layout="mono",
        rate=stream.codec_context.sample_rate,
        frame_size=stream.codec_context.frame_size or None,
    )
    for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
        out.mux(stream.encode(chunk))
    out.mux(stream.encode(None))
