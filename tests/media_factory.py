"""Make small media files for tests, on the fly, with PyAV (no network, no fixtures on disk).

    from .media_factory import make_clip
    make_clip(tmp_path / "a.mp4", seconds=0.6)                     # face + voice, H.264 + AAC
    make_clip(tmp_path / "b.avi", with_audio=False)                 # video only
    make_clip(tmp_path / "c.wav", with_face=False)                  # audio only (suffix decides)
    make_clip(tmp_path / "d.mp4", with_face=False)                  # a scene with no one in it
    make_clip(tmp_path / "e.mp4", rotation=-90)                     # portrait phone video, stored sideways

The container and codecs follow the suffix (mp4, mov, mkv, avi, flv, wav, flac: see
`auxformer.train.media_writer.CODECS`). Faces and voices come from the raw-media demo's generator,
so the default Haar detector finds the face in (nearly) every frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from auxformer.train.demo_face import FaceRenderer, random_look
from auxformer.train.demo_voice import Style, random_voice, synthesize
from auxformer.train.media_writer import CODECS, write_clip

AUDIO_ONLY = {suffix for suffix, (video, _) in CODECS.items() if video is None}
_renderers: dict[int, FaceRenderer] = {}


def make_clip(
    path: str | Path,
    seconds: float = 0.8,
    with_audio: bool = True,
    with_face: bool = True,
    size: int = 96,
    fps: float = 25.0,
    audio_rate: int = 16000,
    expression: str | None = "jaw_drop",
    silent: bool = False,
    seed: int = 0,
    faststart: bool = True,
    height: int | None = None,
    rotation: int = 0,
    rotate_tag: bool = False,
) -> Path:
    """Write a clip to `path` and return it. `size` is the frame width (even), `height` its height
    (default: square); `silent` writes an audio track of digital silence; audio-only suffixes (.wav,
    .flac) ignore the video options; `faststart=False` puts an mp4's index at the end, as many
    recorders do. `rotation` (a multiple of 90 degrees, counterclockwise) writes the pixels turned
    the other way, with a display matrix saying how to show them upright, as a phone stores portrait
    video; with `rotate_tag` the rotation is a legacy `rotate` stream tag instead (degrees clockwise;
    use .mkv: the mp4 muxer drops the tag)."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    look, voice = random_look(rng), random_voice(rng)
    audio = None
    if with_audio:
        audio = np.zeros(int(seconds * audio_rate), np.float32)
        if not silent:
            audio = synthesize(voice, Style(), seconds, seconds / 2, rng, audio_rate)
    frames = None
    if path.suffix.lower() not in AUDIO_ONLY:
        renderer = _renderers.setdefault(size, FaceRenderer(size))
        times = np.arange(round(seconds * fps)) / fps
        if with_face:
            frames = [renderer.frame(look, expression, float(np.sin(np.pi * t / seconds)), float(t)) for t in times]
        else:
            frames = [renderer.background(look, float(t)) for t in times]
        if height is not None:  # a centred crop or grey bands: the face stays in the middle
            frames = [_fit_height(f, height) for f in frames]
        frames = [np.ascontiguousarray(np.rot90(f, -round(rotation / 90))) for f in frames]
    tags = {"rotate": str(-rotation % 360)} if rotate_tag else None
    matrix = 0 if rotate_tag else rotation
    return write_clip(path, frames, fps, audio, audio_rate, faststart, display_rotation=matrix, video_tags=tags)


def _fit_height(frame: np.ndarray, height: int) -> np.ndarray:
    extra = frame.shape[0] - height
    if extra >= 0:
        return frame[extra // 2 : extra // 2 + height]
    pad = ((-extra // 2, -extra - (-extra // 2)), (0, 0), (0, 0))
    return np.pad(frame, pad, constant_values=128)


def make_long_audio(path: str | Path, seconds: float = 600.0, rate: int = 8000) -> Path:
    """A long, cheap audio-only file (a quiet tone): a 10-minute wav is 9.6 MB and written in ms."""
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    return write_clip(path, None, 25.0, 0.1 * np.sin(2 * np.pi * 200 * t), rate)


def make_not_media(path: str | Path) -> Path:
    path = Path(path)
    path.write_text("clip_id,label\nthis is a text file, not a video\n" * 20)
    return path


def truncate_copy(source: str | Path, path: str | Path, fraction: float = 0.5) -> Path:
    """The first `fraction` of `source`'s bytes, as an interrupted download would leave it."""
    data = Path(source).read_bytes()
    path = Path(path)
    path.write_bytes(data[: int(len(data) * fraction)])
    return path
