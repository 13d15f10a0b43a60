"""The input video again, with the current window's emotion drawn on every frame.

Each frame gets a banner across its top in the predicted label's colour (the timeline plot's colours),
saying the label and its probability and which of voice and face the window had, and below it a bar
per label. A window that gave no prediction (failed, or nobody there) shows a grey "no prediction"
banner, and so does a frame no window covers.

Which window a frame shows: of the windows covering the frame's time, the one whose centre is
nearest. With overlapping windows (hop < window) every instant lies in several; the centred one saw
as much before the frame as after it, so label changes on screen fall within half a hop of where the
windows place them, where "the latest window" would trail the speech by half a window. The timeline
plot attributes time to windows the same way.

It streams: one decoded frame at a time is drawn, encoded (H.264) and muxed, so memory does not grow
with the video's length. The audio is copied as it is when the output container takes its codec,
else re-encoded to AAC; a source without audio gives a video without audio. Frames come out upright
(rotation metadata is applied to the pixels, as the front end does: `media.decode`). Packets that
cannot be decoded (a corrupt stretch) are skipped and counted; the rest of the video is kept. The
output is written to a temporary name and renamed, so a reader never sees half a video.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.common import atomic
from auxformer.common.optional import require

from .media.decode import MediaError, rotate_tag_turns, upright_turns, video_stream
from .media.picture import Picture
from .segment import Segment
from .timeline_style import NO_PREDICTION, label_colors, labels_of

# output suffix -> FFmpeg container; H.264 video and AAC audio go in all of them
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
# audio codecs each container takes as they come (copied, not re-encoded)
COPIED_AUDIO = {
    "mp4": frozenset({"aac", "mp3"}),
    "mov": frozenset({"aac", "mp3", "alac", "pcm_s16le"}),
    "matroska": frozenset({"aac", "mp3", "opus", "vorbis", "flac", "pcm_s16le"}),
}
GREY = (90, 90, 90)
TIE_S = 1e-6  # seconds: distances to two centres closer than this are a tie


@dataclass(frozen=True)
class OverlaySettings:
    max_side: int | None = None  # downscale so the longer side is at most this; None keeps the source's size
    crf: int = 23  # x264 quality: lower is better and bigger
    preset: str = "veryfast"  # x264 speed
    bars: bool = True  # a probability bar per label under the banner


@dataclass(frozen=True)
class OverlayResult:
    path: Path
    frames: int  # frames written
    skipped_packets: int  # video packets that could not be decoded (corrupt stretches)
    audio: str  # "copied", "re-encoded" or "none"


class SegmentLookup:
    """Which segment a frame at time t shows: of those covering t, the one with the nearest centre."""

    def __init__(self, segments: Iterable[Segment]):
        self.segments = sorted(segments, key=lambda s: (s.start + s.end, s.start))
        self.centres = np.array([(s.start + s.end) / 2 for s in self.segments], np.float64)
        self.reach = max(((s.end - s.start) / 2 for s in self.segments), default=0.0)

    def at(self, t: float) -> int | None:
        """Index into `self.segments`, or None when no segment covers t."""
        # a window covering t has its centre within `reach` of t
        lo = int(np.searchsorted(self.centres, t - self.reach, side="left"))
        hi = int(np.searchsorted(self.centres, t + self.reach, side="right"))
        best = None
        for i in range(lo, hi):
            segment = self.segments[i]
            # centres ascend, so a tie (t halfway between two centres, common when frame times and
            # the hop share a grid) goes to the later window, whatever the rounding of t
            if segment.start <= t < segment.end and (
                best is None or abs(self.centres[i] - t) <= abs(self.centres[best] - t) + TIE_S
            ):
                best = i
        return best


def write_overlay(
    source: str | os.PathLike[str],
    segments: Iterable[Segment],
    out_path: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    settings: OverlaySettings | None = None,
) -> OverlayResult:
    """Re-encode `source` to `out_path` (.mp4, .mov or .mkv) with each frame's window drawn on it.

    `segments` are the source's windows (times in seconds from its start, as `Session.stream` gives
    them); `labels` fixes the order and colours of the bars (default: as the segments name them)."""
    settings = settings or OverlaySettings()
    out_path = Path(out_path)
    container_format = CONTAINERS.get(out_path.suffix.lower())
    if container_format is None:
        raise ValueError(f"cannot write an overlay as {out_path.suffix!r}: use one of {', '.join(CONTAINERS)}")
    lookup = SegmentLookup(segments)
    painter = Painter(lookup.segments, labels_of(lookup.segments, labels), settings.bars)
    av = require("av")
    require("cv2")  # fail before any work when OpenCV is missing
    try:
        source_container = av.open(os.fspath(source), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise MediaError(f"cannot read {source}: {err}") from None
    with source_container as src:
        vstream = video_stream(av, src)
        if vstream is None:
            raise MediaError(f"{source} has no video stream to draw on")
        options = {"movflags": "+faststart"} if container_format in ("mp4", "mov") else {}
        with (
            atomic.atomic_path(out_path) as tmp,
            av.open(str(tmp), "w", format=container_format, options=options) as out,
        ):
            job = _Overlay(av, src, vstream, out, container_format, lookup, painter, settings)
            frames, skipped = job.run()
    return OverlayResult(out_path, frames, skipped, job.audio_mode)


class _Overlay:
    """One pass over the source's packets: video decoded, drawn and encoded; audio copied or re-encoded."""

    def __init__(self, av, src, vstream, out, container_format, lookup, painter, settings):  # type: ignore[no-untyped-def]
        self.av, self.src, self.vin, self.out = av, src, vstream, out
        self.lookup, self.painter, self.settings = lookup, painter, settings
        self.origin = src.start_time / av.time_base if src.start_time is not None else 0.0
        self.tag_turns = rotate_tag_turns(vstream)
        self.rate = vstream.average_rate or vstream.guessed_rate or Fraction(25)
        self.time_base = vstream.time_base or Fraction(1, 1) / self.rate
        self.vout: Any = None  # created with the first frame, when its upright size is known
        self.size: tuple[int, int] | None = None  # (width, height) of every output frame
        self.last_pts: int | None = None
        self.ain = next(iter(src.streams.audio), None)
        self.copy_audio = self.ain is not None and self.ain.codec_context.name in COPIED_AUDIO[container_format]
        self.audio_mode = "none" if self.ain is None else "copied" if self.copy_audio else "re-encoded"
        self.aout: Any = None
        self.resampler: Any = None
        self.samples_out = 0
        # audio that arrives before the first video frame waits for the output's streams to exist
        self.waiting: list[Any] | None = []

    def run(self) -> tuple[int, int]:
        frames = skipped = 0
        streams = [s for s in (self.vin, self.ain) if s is not None]
        for packet in self.src.demux(streams):
            if packet.stream is self.vin:
                try:
                    decoded = packet.decode()
                except (self.av.FFmpegError, ValueError):
                    skipped += 1
                    continue
                for frame in decoded:
                    self._video(frame)
                    frames += 1
            elif self.waiting is not None:
                self.waiting.append(packet)
            else:
                self._audio_packet(packet)
        if self.vout is None:
            raise MediaError("no decodable video frame to draw on")
        self.out.mux(self.vout.encode(None))
        if self.resampler is not None:
            self._audio(None)
            self.out.mux(self.aout.encode(None))
        return frames, skipped

    def _open_audio(self) -> None:
        """Add the audio stream (after the video one, so the video is stream 0) and catch up."""
        if self.copy_audio:
            self.aout = self.out.add_stream_from_template(self.ain)
        elif self.ain is not None:
            rate = self.ain.codec_context.sample_rate or 48000
            self.aout = self.out.add_stream("aac", rate=rate)
            self.aout.layout = "stereo" if self.ain.codec_context.layout.nb_channels > 1 else "mono"
            self.resampler = self.av.AudioResampler(
                format=self.aout.codec_context.format,
                layout=self.aout.layout,
                rate=rate,
                frame_size=self.aout.codec_context.frame_size or None,
            )
        waiting, self.waiting = self.waiting or [], None
        for packet in waiting:
            self._audio_packet(packet)

    def _audio_packet(self, packet: Any) -> None:
        if self.copy_audio:
            if packet.dts is not None:  # the demuxer's last, empty packet carries none
                packet.stream = self.aout
                self.out.mux(packet)
            return
        try:
            decoded = packet.decode()
        except (self.av.FFmpegError, ValueError):
            return  # a corrupt stretch: dropped; the audio after it keeps its time (`_audio`)
        for frame in decoded:
            self._audio(frame)

    def _video(self, frame: Any) -> None:
        cv2 = require("cv2")
        rgb = self._upright(frame)
        if self.vout is None:
            self._open_video(rgb)
            self._open_audio()
        width, height = self.size  # type: ignore[misc]
        if rgb.shape[1] != width or rgb.shape[0] != height:  # the rotation or size changed mid-stream
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        t = (frame.time if frame.time is not None else 0.0) - self.origin
        self.painter.draw(rgb, self.lookup.at(t))
        pts = frame.pts
        if pts is None or (self.last_pts is not None and pts <= self.last_pts):
            step = max(1, round(1 / (self.rate * self.time_base)))
            pts = (self.last_pts + step) if self.last_pts is not None else 0
        self.last_pts = pts
        out = self.av.VideoFrame.from_ndarray(rgb, format="rgb24")
        out.pts, out.time_base = pts, self.time_base
        self.out.mux(self.vout.encode(out))

    def _upright(self, frame: Any) -> np.ndarray:
        """The frame upright as RGB, no larger than `max_side`, in even sizes (H.264's 4:2:0 needs them)."""
        side = self.settings.max_side or max(frame.width, frame.height)
        picture = Picture.of_frame(frame, side, upright_turns(frame, self.tag_turns))
        height, width = picture.shape[:2]
        if width % 2 or height % 2:
            return picture.resized_rgb(width - width % 2, height - height % 2)
        return picture.rgb()

    def _open_video(self, first: np.ndarray) -> None:
        height, width = first.shape[:2]
        self.size = (width, height)
        self.vout = self.out.add_stream("libx264", rate=self.rate)
        self.vout.width, self.vout.height, self.vout.pix_fmt = width, height, "yuv420p"
        self.vout.codec_context.time_base = self.time_base
        self.vout.options = {"preset": self.settings.preset, "crf": str(self.settings.crf)}

    def _audio(self, frame: Any) -> None:
        rate = self.aout.codec_context.sample_rate
        if frame is not None and frame.time is not None:
            # the first sample, or audio after a gap (a corrupt stretch), goes where its time says,
            # so the sound stays with the pictures
            at = round(frame.time * rate)
            if at - self.samples_out > rate // 10 or self.samples_out == 0:
                self.samples_out = max(self.samples_out, at)
            frame.pts = None  # the resampler's output gets our running sample count instead
        for chunk in self.resampler.resample(frame):
            chunk.pts, chunk.time_base = self.samples_out, Fraction(1, rate)
            self.samples_out += chunk.samples
            self.out.mux(self.aout.encode(chunk))


class Painter:
    """Draws a segment's banner and bars onto frames of one size; one drawing per segment, reused."""

    def __init__(self, segments: Sequence[Segment], labels: Sequence[str], bars: bool):
        self.segments, self.labels, self.bars = segments, list(labels), bars
        self.colors = label_colors(self.labels)

    def draw(self, rgb: np.ndarray, index: int | None) -> None:
        """Blend the drawing for segment `index` (None: no window here) into `rgb` in place."""
        height, width = rgb.shape[:2]
        ink, alpha = self._layer(index, width, height)
        region = rgb[: ink.shape[0]]
        blended = region * (1.0 - alpha[..., None]) + ink * alpha[..., None]
        region[:] = blended.astype(np.uint8)

    @functools.lru_cache(maxsize=16)  # noqa: B019 (one painter per overlay; frames of a segment share a drawing)
    def _layer(self, index: int | None, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        cv2 = require("cv2")
        segment = self.segments[index] if index is not None else None
        scale = float(np.clip(min(width, height) / 360, 0.35, 3.0))
        banner = max(14, round(30 * scale))
        row = max(7, round(13 * scale))
        probabilities = segment.probabilities if segment is not None and segment.ok else None
        rows = len(self.labels) if self.bars and probabilities else 0
        panel = banner + rows * row + (round(4 * scale) if rows else 0)
        ink = np.zeros((min(panel, height), width, 3), np.float32)
        alpha = np.zeros(ink.shape[:2], np.float32)
        font, thick = cv2.FONT_HERSHEY_SIMPLEX, max(1, round(1.6 * scale))

        def box(x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int], a: float) -> None:
            ink[y0:y1, x0:x1] = color
            alpha[y0:y1, x0:x1] = a

        def text(s: str, x: int, y: int, size: float, color: tuple[int, int, int] = (255, 255, 255)) -> None:
            cv2.putText(ink, s, (x, y), font, size, color, thick, cv2.LINE_AA)
            cv2.putText(alpha, s, (x, y), font, size, 1.0, thick, cv2.LINE_AA)

        if segment is not None and segment.label is not None:
            color = self.colors.get(segment.label, GREY)
            p = (probabilities or {}).get(segment.label)
            title = segment.label + (f" {100 * p:.0f}%" if p is not None else "")
        else:
            color, title = GREY, NO_PREDICTION
        box(0, 0, width, banner, color, 0.85)
        text(title, round(6 * scale), banner - round(9 * scale), 0.7 * scale)
        if segment is not None:
            if segment.ok:
                note = " ".join(f"{name}{'+' if segment.present.get(key) else '-'}" for key, name in _MODALITY_NAMES)
            else:
                note = segment.status.value + (f": {segment.reason}" if segment.reason else "")
            size = 0.42 * scale
            room = width - round(12 * scale) - cv2.getTextSize(title, font, 0.7 * scale, thick)[0][0]
            while note and cv2.getTextSize(note, font, size, thick)[0][0] > room:
                note = note[: max(0, len(note) - 4)] + "~" if len(note) > 4 else ""
            if note:
                w = cv2.getTextSize(note, font, size, thick)[0][0]
                text(note, width - w - round(6 * scale), banner - round(10 * scale), size)
        if rows:
            name_w, bar_w = round(70 * scale), round(0.3 * width)
            box(0, banner, min(width, name_w + bar_w + round(8 * scale)), panel, (0, 0, 0), 0.45)
            for k, label in enumerate(self.labels):
                y = banner + round(2 * scale) + k * row
                text(label, round(6 * scale), y + row - round(3 * scale), 0.36 * scale)
                length = round(bar_w * float(probabilities.get(label, 0.0)))  # type: ignore[union-attr]
                box(name_w, y + 1, name_w + length, y + row - 1, self.colors[label], 0.95)
        return ink, alpha


_MODALITY_NAMES = (("audio", "voice"), ("video", "face"))
