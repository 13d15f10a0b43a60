"""A long recording with known emotion changes, for the stream tests and benchmark (a minimal
chain of the raw-media demo's clips; timeline-views' generator is the richer one).

    plan = write_recording(tmp_path / "long.mp4", ["anger", "happy", "sad"], seconds_each=6.0)
    plan.label_at(7.5)  # "happy"

One demo speaker says one utterance after another in each emotion in turn (the demo's voice styles
and facial expressions, so the demo model knows them); `loop_file` makes a long file cheaply by
repeating a short one's packets (no re-encoding).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auxformer.train.demo_corpus import AUDIO_GROUP, VIDEO_GROUP
from auxformer.train.demo_face import FaceRenderer, random_look
from auxformer.train.demo_voice import random_voice, synthesize
from auxformer.train.media_demo import FACE_EXPRESSIONS, VOICE_STYLES, expression_curve
from auxformer.train.media_writer import write_clip


@dataclass
class RecordingPlan:
    labels: list[str]
    seconds_each: float

    @property
    def changes(self) -> list[float]:
        """Times where the emotion changes."""
        return [k * self.seconds_each for k in range(1, len(self.labels))]

    @property
    def duration(self) -> float:
        return len(self.labels) * self.seconds_each

    def label_at(self, t: float) -> str:
        return self.labels[min(int(t // self.seconds_each), len(self.labels) - 1)]


def recording_arrays(
    labels: list[str], seconds_each: float, size: int = 160, fps: float = 25.0, rate: int = 16000, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames and audio: in each emotion's stretch, utterances of ~1.2 s, each with its expression peak."""
    rng = np.random.default_rng(seed)
    look, voice = random_look(rng), random_voice(rng)
    renderer = FaceRenderer(size)
    frames, audio = [], []
    utterance = 1.2
    for label in labels:
        n = max(1, round(seconds_each / utterance))
        length = seconds_each / n
        for _ in range(n):
            emphasis = float(rng.uniform(0.35, 0.65) * length)
            audio.append(synthesize(voice, VOICE_STYLES[AUDIO_GROUP[label]], length, emphasis, rng, rate))
            times = np.arange(round(length * fps)) / fps
            strength = expression_curve(times, emphasis, 1.0)
            expression = FACE_EXPRESSIONS[VIDEO_GROUP[label]]
            for t, s in zip(times, strength, strict=True):
                frames.append(renderer.frame(look, expression, float(s), float(t)))
    return frames, np.concatenate(audio).astype(np.float32)


def write_recording(
    path: str | Path, labels: list[str], seconds_each: float = 6.0, size: int = 160, seed: int = 0
) -> RecordingPlan:
    frames, audio = recording_arrays(labels, seconds_each, size, seed=seed)
    write_clip(path, frames, 25.0, audio, 16000)
    return RecordingPlan(list(labels), seconds_each)


def loop_file(short: str | Path, out: str | Path, seconds: float) -> Path:
    """`short` repeated (packets copied, timestamps shifted) until `out` is at least `seconds` long."""
    import av

    with av.open(str(short)) as src:
        packets = [(p.stream.index, p) for p in src.demux() if p.dts is not None]
        length = float(src.duration / av.time_base)
        with av.open(str(out), "w") as dst:
            streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
            loops = int(np.ceil(seconds / length))
            for k in range(loops):
                for index, packet in packets:
                    stream = src.streams[index]
                    shift = round(k * length / stream.time_base)
                    packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                    packet.stream = streams[index]
                    dst.mux(packet)
                    packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
                    packet.stream = stream
    return Path(out)
