"""A generated feature corpus for the demo: small, fast, and honest about needing both modalities.

Six CREMA-D classes. Voice evidence puts the classes in three pairs, face evidence in three *other*
pairs, so each modality alone can tell a class only up to a pair (at most about 50 % accuracy) and
only the two together name it:

    audio pairs: {anger, disgust} {fear, happy} {neutral, sad}
    video pairs: {anger, fear} {disgust, neutral} {happy, sad}

e.g. anger vs disgust is visible only in the face, anger vs fear only in the voice. Each clip has one
expressive event whose timing differs between the streams by up to 150 ms (no alignment is given),
speakers shift every feature and scale the expression, and frames are noisy. A few clips lose their
face entirely and some frames have no face, as real detectors do.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from auxformer.runtime.contracts import AUDIO_DIM, AUDIO_FPS, ClipFeatures
from auxformer.train.corpus import METADATA, CorpusWriter, FeatureCorpus

LABELS = ("anger", "disgust", "fear", "happy", "neutral", "sad")
AUDIO_GROUP = {"anger": 0, "disgust": 0, "fear": 1, "happy": 1, "neutral": 2, "sad": 2}
VIDEO_GROUP = {"anger": 0, "fear": 0, "disgust": 1, "neutral": 1, "happy": 2, "sad": 2}


@dataclass(frozen=True)
class DemoSpec:
    speakers: int = 30
    clips_per_class: int = 6  # per speaker
    min_seconds: float = 0.9
    max_seconds: float = 1.3
    video_fps: float = 30.0
    video_dim: int = 512
    max_offset_s: float = 0.15
    signal: float = 4.0  # expression strength (peak, along its direction, relative to sqrt(dim)/4 noise)
    speaker_shift: float = 0.7
    no_face_clips: float = 0.03  # fraction of clips with no face in any frame
    no_face_frames: float = 0.05  # fraction of frames with no face in the other clips
    seed: int = 0


# Fewer, shorter clips for protocols (many trainings): same classes, evidence and offsets.
PROTOCOL_DEMO = DemoSpec(speakers=24, clips_per_class=4, min_seconds=0.6, max_seconds=0.9)


def _event(t: np.ndarray, centre: float, width: float, freq: float) -> np.ndarray:
    """A bump around `centre` with a group-specific modulation (prosody / facial motion)."""
    envelope = np.exp(-0.5 * ((t - centre) / width) ** 2)
    return envelope * (1.0 + 0.5 * np.sin(2 * np.pi * freq * (t - centre)))


class DemoGenerator:
    def __init__(self, spec: DemoSpec):
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        # one unit direction per evidence group and modality
        self.audio_dirs = _unit(rng.standard_normal((3, AUDIO_DIM)))
        self.video_dirs = _unit(rng.standard_normal((3, spec.video_dim)))
        self.freqs = np.array([1.5, 4.0, 7.0])
        self.rng = rng

    def speaker(self, index: int) -> dict[str, np.ndarray | float]:
        rng, s = self.rng, self.spec
        return {
            "audio_shift": rng.standard_normal(AUDIO_DIM) * s.speaker_shift,
            "video_shift": rng.standard_normal(s.video_dim) * s.speaker_shift,
            "gain": float(rng.uniform(0.75, 1.25)),
        }

    def clip(self, clip_id: str, label: str, speaker_id: str, who: dict) -> ClipFeatures:
        rng, s = self.rng, self.spec
        seconds = rng.uniform(s.min_seconds, s.max_seconds)
        ta, tv = round(seconds * AUDIO_FPS), round(seconds * s.video_fps)
        centre = rng.uniform(0.3, 0.7) * seconds
        offset = rng.uniform(-s.max_offset_s, s.max_offset_s)  # video lags or leads the voice
        ga, gv = AUDIO_GROUP[label], VIDEO_GROUP[label]
        amp = s.signal * who["gain"]

        t_a = np.arange(ta) / AUDIO_FPS
        audio = rng.standard_normal((ta, AUDIO_DIM)) + who["audio_shift"]
        audio += amp * _event(t_a, centre, 0.12, self.freqs[ga])[:, None] * self.audio_dirs[ga] * np.sqrt(AUDIO_DIM) / 4

        t_v = np.arange(tv) / s.video_fps
        video = rng.standard_normal((tv, s.video_dim)) + who["video_shift"]
        video += (
            amp
            * _event(t_v, centre + offset, 0.12, self.freqs[gv])[:, None]
            * self.video_dirs[gv]
            * np.sqrt(s.video_dim)
            / 4
        )
        video_mask = rng.random(tv) >= s.no_face_frames
        if rng.random() < s.no_face_clips:
            video_mask[:] = False
        video[~video_mask] = 0.0
        return ClipFeatures(
            clip_id,
            audio,
            np.ones(ta, bool),
            video,
            video_mask,
            label=label,
            speaker=speaker_id,
            info={"offset_s": offset},
        )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def generate(out: str | Path, spec: DemoSpec | None = None) -> FeatureCorpus:
    """Write the demo corpus to `out` (reusing it when it was made from the same spec)."""
    spec = spec or DemoSpec()
    out = Path(out)
    meta_path = out / METADATA
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("demo_spec") == asdict(spec):
        return FeatureCorpus.open(out)
    gen = DemoGenerator(spec)
    with CorpusWriter(
        out,
        labels=LABELS,
        video_dim=spec.video_dim,
        source="demo-features",
        audio_features="demo (ComParE-shaped, 130 dims at 100 fps)",
        video_embedder="demo",
        demo_spec=asdict(spec),
    ) as writer:
        for k in range(spec.speakers):
            speaker_id = f"spk{k:02d}"
            who = gen.speaker(k)
            for label in LABELS:
                for j in range(spec.clips_per_class):
                    clip = gen.clip(f"{speaker_id}_{label}_{j}", label, speaker_id, who)
                    writer.add(clip, offset_s=f"{clip.info['offset_s']:.3f}")
    return FeatureCorpus.open(out)
