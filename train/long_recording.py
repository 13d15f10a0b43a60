"""A long recording whose emotions, and when they change, are known: the raw-media demo's talking
head speaking utterance after utterance, one emotion per stretch.

    rec = write_long_recording("talk.mp4", ["neutral", "happy", None, "anger"], seconds_each=6)
    rec.stretches    # (0, 6, "neutral"), (6, 12, "happy"), (12, 18, None), (18, 24, "anger")
    rec.label_at(7)  # "happy"; None where nobody is there

One speaker (a look and a voice drawn from `seed`, like a demo speaker) says utterances of the demo's
lengths (`MediaDemoSpec.min_seconds` to `max_seconds`), each made exactly as a demo clip of its
emotion is (`media_demo.clip_media`): the same voice styles and facial expressions, the face's peak
up to `max_offset_s` away from the voice's. A stretch labelled None is the speaker's empty scene with
only the room's noise floor: no face, no voice. Stretch boundaries fall on frame boundaries, so the
ground truth is exact to the frame and the audio sample.

`corrupt=(start, end)` overwrites the bytes of every packet in that time span with random bytes after
the file is written, as a damaged disk or a broken transfer would: the container stays readable, the
packets there do not decode. Keyframes come every `keyframe_seconds`, so the damage spoils at most
that much more video after `end`. The file is written piece by piece (the muxer interleaves audio and
video), so an hour of it never sits in memory; `frame_size` renders the face at the demo's size and
scales it up (a 480p file for the cost of a 160-pixel one). `loop_file` makes an hour-long file
cheaply from a short one by repeating its packets (no re-encoding), for speed and memory benchmarks.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from auxformer.common.optional import require

from .demo_corpus import LABELS
from .demo_face import FaceRenderer, random_look
from .demo_voice import random_voice
from .media_demo import MediaDemoSpec, clip_media, draw_clip
from .media_writer import media_writer

NOISE_FLOOR = 1e-3  # the room noise the demo's voices sit on (`demo_voice.synthesize`)


class Stretch(NamedTuple):
    start: float  # seconds
    end: float
    label: str | None  # None: nobody there (no face, no voice)


@dataclass(frozen=True)
class LongRecording:
    path: Path
    stretches: tuple[Stretch, ...]
    corrupt: tuple[float, float] | None = None  # seconds whose packets were overwritten with garbage

    @property
    def duration(self) -> float:
        return self.stretches[-1].end if self.stretches else 0.0

    def label_at(self, t: float) -> str | None:
        """The true label at `t` seconds (None: nobody there, or outside the recording)."""
        return next((s.label for s in self.stretches if s.start <= t < s.end), None)

    @property
    def changes(self) -> list[float]:
        """Times where the true label changes."""
        return [b.start for a, b in zip(self.stretches, self.stretches[1:], strict=False) if a.label != b.label]

    def per_second(self) -> list[str | None]:
        """The true label of each whole second (at its middle)."""
        return [self.label_at(k + 0.5) for k in range(int(self.duration))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "duration": self.duration,
            "stretches": [s._asdict() for s in self.stretches],
            "corrupt": list(self.corrupt) if self.corrupt else None,
        }


def write_long_recording(
    path: str | Path,
    emotions: Sequence[str | None] = LABELS,
    seconds_each: float | Sequence[float] = 4.0,
    seed: int = 0,
    corrupt: tuple[float, float] | None = None,
    spec: MediaDemoSpec | None = None,
    frame_size: tuple[int, int] | None = None,
    keyframe_seconds: float = 1.0,
) -> LongRecording:
    """Write one stretch per entry of `emotions` (a demo label, or None for nobody there), each
    `seconds_each` long (one number, or one per stretch), to `path` (.mp4, .mov, .mkv); returns the
    ground truth. `spec` gives the frame rate, face size, audio rate and utterance lengths (the demo's
    by default); `frame_size` (width, height) scales the frames up and pads them to that size."""
    spec = spec or MediaDemoSpec()
    lengths = [float(seconds_each)] * len(emotions) if np.isscalar(seconds_each) else list(seconds_each)  # type: ignore[arg-type]
    if len(lengths) != len(emotions):
        raise ValueError(f"{len(emotions)} emotions but {len(lengths)} lengths in seconds_each")
    unknown = sorted({str(e) for e in emotions if e is not None and e not in LABELS})
    if unknown:
        raise ValueError(f"unknown emotion(s) {', '.join(unknown)}: the demo knows {', '.join(LABELS)} (or None)")
    rng = np.random.default_rng(seed)
    look, voice = random_look(rng), random_voice(rng)
    expressiveness = float(rng.uniform(0.75, 1.15))
    renderer = FaceRenderer(spec.size)
    size = frame_size or (spec.size, spec.size)
    per_frame = spec.audio_rate / spec.fps  # audio samples per video frame
    edges = np.round(np.cumsum([0.0, *lengths]) * spec.fps).astype(int)  # stretch boundaries in frames
    stretches = []
    with media_writer(path, size, spec.fps, spec.audio_rate, keyframe_seconds=keyframe_seconds) as writer:
        for label, f0, f1 in zip(emotions, edges[:-1], edges[1:], strict=True):
            stretches.append(Stretch(float(f0 / spec.fps), float(f1 / spec.fps), label))
            for u0, u1 in _utterances(int(f0), int(f1), spec):
                start = u0 / spec.fps
                samples = round(u1 * per_frame) - round(u0 * per_frame)
                if label is None:
                    frames = (renderer.background(look, (u0 + i) / spec.fps) for i in range(u1 - u0))
                    audio = NOISE_FLOOR * rng.standard_normal(samples).astype(np.float32)
                else:
                    seconds = (u1 - u0) / spec.fps
                    plan = draw_clip(rng, spec, "", label, "long", "", seconds, look, voice, expressiveness)
                    frames, audio = clip_media(plan, spec, renderer, start)
                    audio = np.pad(audio[:samples], (0, max(0, samples - len(audio))))
                for frame in frames:
                    writer.frame(_fit(frame, size))
                writer.audio(audio)
    recording = LongRecording(Path(path), tuple(stretches))
    if corrupt is not None:
        _overwrite_packets(Path(path), *corrupt, rng)
        recording = replace(recording, corrupt=(float(corrupt[0]), float(corrupt[1])))
    return recording


def _utterances(f0: int, f1: int, spec: MediaDemoSpec) -> list[tuple[int, int]]:
    """Cut frames [f0, f1) into utterances of about the demo's clip length."""
    typical = (spec.min_seconds + spec.max_seconds) / 2 * spec.fps
    count = max(1, round((f1 - f0) / typical))
    cuts = np.round(np.linspace(f0, f1, count + 1)).astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(cuts) if b > a]


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale a square frame to the target height and pad its sides with its own edge pixels."""
    width, height = size
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    cv2 = require("cv2")
    side = min(width, height)
    frame = cv2.resize(frame, (side, side), interpolation=cv2.INTER_LINEAR)
    left, top = (width - side) // 2, (height - side) // 2
    return cv2.copyMakeBorder(frame, top, height - side - top, left, width - side - left, cv2.BORDER_REPLICATE)


def _overwrite_packets(path: Path, start: float, end: float, rng: np.random.Generator) -> int:
    """Overwrite the bytes of every packet whose time falls in [start, end) with random bytes; returns
    how many bytes were overwritten. The container's index is left alone, so the file still opens."""
    av = require("av")
    spans = []
    with av.open(str(path)) as container:
        for packet in container.demux():
            t = float(packet.pts * packet.time_base) if packet.pts is not None else None
            if t is not None and start <= t < end and packet.pos is not None and packet.pos >= 0 and packet.size:
                spans.append((packet.pos, packet.size))
    with open(path, "r+b") as fh:
        for pos, size in spans:
            fh.seek(pos)
            fh.write(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    return sum(size for _, size in spans)


def loop_file(short: str | Path, out: str | Path, seconds: float) -> Path:
    """`short` repeated (packets copied, timestamps shifted) until `out` is at least `seconds` long."""
    av = require("av")
    with av.open(str(short)) as src:
        packets = [(p.stream.index, p) for p in src.demux() if p.dts is not None]
        # one period for all streams, long enough for each (an encoder's priming makes a stream's packets
        # span more than the container's duration): timestamps keep rising across the joins
        length = max(_span([p for i, p in packets if i == s]) for s in {i for i, _ in packets})
        with av.open(str(out), "w") as dst:
            streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
            for k in range(int(np.ceil(seconds / length))):
                for index, packet in packets:
                    stream = src.streams[index]
                    shift = round(k * length / stream.time_base)
                    packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                    packet.stream = streams[index]
                    dst.mux(packet)
                    packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
                    packet.stream = stream
    return Path(out)


def _span(packets: list[Any]) -> float:
    """Seconds from one stream's first packet to the end of its last."""
    first = min(p.dts for p in packets)
    end = max(p.dts + (p.duration or 0) for p in packets)
    return float((end - first) * packets[0].time_base)
