"""The raw-media demo: generated mp4 clips -> the default front end -> a feature corpus.

Each clip is a real mp4 (H.264 + AAC) of a talking head: a face that moves into an expression and a
synthesized voice with a speaking style. The six CREMA-D classes follow the same design as the
feature-level demo (`demo_corpus.py`): the voice tells the classes apart only up to the pairs
{anger, disgust} {fear, happy} {neutral, sad}, the face only up to {anger, fear} {disgust, neutral}
{happy, sad}, so only both together name the class. Speakers differ in look and voice, and the
facial expression peaks up to 150 ms before or after the vocal emphasis (no alignment is given).

`run_media_demo(out)` generates the clips (kept between runs), extracts features with the default
front end (process pool, feature cache; it prints the face detection rate) and writes the corpus.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from auxformer.common import atomic
from auxformer.common.parallel import default_workers, ordered_map
from auxformer.common.progress import clip_progress
from auxformer.runtime.features import FeatureSettings
from auxformer.train.corpora.folder import read_csv_list
from auxformer.train.corpus import FeatureCorpus
from auxformer.train.prepare import PrepareSummary, prepare

from .demo_corpus import AUDIO_GROUP, LABELS, VIDEO_GROUP
from .demo_face import FaceRenderer, Look, random_look
from .demo_voice import Style, Voice, random_voice, synthesize
from .media_writer import write_clip

# the voice evidence of each audio group, the face evidence of each video group
VOICE_STYLES = {
    0: Style(pitch=1.25, glide=-0.35, syllables_per_s=5.5, loudness_db=0.0, brightness=0.5, emphasis=0.25),
    1: Style(pitch=1.6, glide=0.3, vibrato=0.04, syllables_per_s=4.5, loudness_db=-4.0, brightness=0.2, emphasis=0.2),
    2: Style(pitch=0.9, glide=-0.05, syllables_per_s=3.0, loudness_db=-12.0, brightness=-0.4, emphasis=0.05),
}
FACE_EXPRESSIONS = {0: "frown", 1: "jaw_drop", 2: "lip_corners_down"}
LABELS_CSV = "labels.csv"
SPEC_FILE = "demo_spec.json"


@dataclass(frozen=True)
class MediaDemoSpec:
    speakers: int = 24
    clips_per_class: int = 5  # per speaker
    min_seconds: float = 1.0
    max_seconds: float = 1.4
    fps: float = 25.0
    size: int = 160  # frame side in pixels
    audio_rate: int = 16000
    max_offset_s: float = 0.15
    seed: int = 0


@dataclass(frozen=True)
class ClipPlan:
    clip_id: str
    label: str
    speaker: str
    path: str  # relative to the media folder
    seconds: float
    emphasis_at: float  # the voice's expressive peak (s)
    offset: float  # the face's peak comes this much later (s, may be negative)
    look: Look
    voice: Voice
    expressiveness: float
    seed: int


def plan_clips(spec: MediaDemoSpec) -> list[ClipPlan]:
    rng = np.random.default_rng(spec.seed)
    plans = []
    for k in range(spec.speakers):
        speaker = f"spk{k:02d}"
        look, voice = random_look(rng), random_voice(rng)
        expressiveness = float(rng.uniform(0.75, 1.15))
        for label in LABELS:
            for j in range(spec.clips_per_class):
                seconds = float(rng.uniform(spec.min_seconds, spec.max_seconds))
                clip_id = f"{speaker}_{label}_{j}"
                path = f"{speaker}/{clip_id}.mp4"
                plans.append(draw_clip(rng, spec, clip_id, label, speaker, path, seconds, look, voice, expressiveness))
    return plans


def draw_clip(
    rng: np.random.Generator,
    spec: MediaDemoSpec,
    clip_id: str,
    label: str,
    speaker: str,
    path: str,
    seconds: float,
    look: Look,
    voice: Voice,
    expressiveness: float,
) -> ClipPlan:
    """A clip of one speaker: where its expressive peak falls, how far the face lags the voice, and its
    seed, drawn from `rng`."""
    return ClipPlan(
        clip_id=clip_id,
        label=label,
        speaker=speaker,
        path=path,
        seconds=seconds,
        emphasis_at=float(rng.uniform(0.35, 0.65) * seconds),
        offset=float(rng.uniform(-spec.max_offset_s, spec.max_offset_s)),
        look=look,
        voice=voice,
        expressiveness=expressiveness,
        seed=int(rng.integers(2**31)),
    )


def expression_curve(t: np.ndarray, peak_at: float, expressiveness: float) -> np.ndarray:
    """Strength of the facial expression over time: held lightly, peaking around `peak_at`."""
    return np.clip(expressiveness * (0.35 + 0.65 * np.exp(-0.5 * ((t - peak_at) / 0.2) ** 2)), 0.0, 1.3)


_renderer: FaceRenderer | None = None


def render_clip(job: tuple[ClipPlan, str, MediaDemoSpec]) -> str:
    """Write one planned clip; runs in a worker process (one face renderer per process)."""
    global _renderer
    plan, root, spec = job
    if _renderer is None or _renderer.size != spec.size:
        _renderer = FaceRenderer(spec.size)
    frames, audio = clip_media(plan, spec, _renderer)
    return str(write_clip(Path(root) / plan.path, frames, spec.fps, audio, spec.audio_rate))


def clip_media(
    plan: ClipPlan, spec: MediaDemoSpec, renderer: FaceRenderer, start: float = 0.0
) -> tuple[Iterator[np.ndarray], np.ndarray]:
    """One planned clip's frames (lazily, `round(seconds * fps)` of them) and its audio. `start`
    places the clip in a longer recording: the head keeps moving on the recording's clock."""
    rng = np.random.default_rng(plan.seed)
    audio = synthesize(
        plan.voice, VOICE_STYLES[AUDIO_GROUP[plan.label]], plan.seconds, plan.emphasis_at, rng, spec.audio_rate
    )
    times = np.arange(round(plan.seconds * spec.fps)) / spec.fps
    strength = expression_curve(times, plan.emphasis_at + plan.offset, plan.expressiveness)
    expression = FACE_EXPRESSIONS[VIDEO_GROUP[plan.label]]
    frames = (
        renderer.frame(plan.look, expression, float(s), start + float(t)) for t, s in zip(times, strength, strict=True)
    )
    return frames, audio


def _render_crashed(job: tuple[ClipPlan, str, MediaDemoSpec]) -> str:
    raise RuntimeError(f"rendering {job[0].clip_id} crashed its worker process")


def generate_media(
    folder: str | Path,
    spec: MediaDemoSpec | None = None,
    workers: int = 0,
    progress: bool = True,
    console: Console | None = None,
) -> Path:
    """Write the demo's mp4 clips and `labels.csv` (path,label,speaker,offset_s) under `folder`.

    Clips already there from the same spec are kept; returns the path of `labels.csv`."""
    spec = spec or MediaDemoSpec()
    folder = Path(folder)
    plans = plan_clips(spec)
    spec_path, labels_path = folder / SPEC_FILE, folder / LABELS_CSV
    same_spec = spec_path.is_file() and json.loads(spec_path.read_text()) == asdict(spec)
    todo = [p for p in plans if not (same_spec and (folder / p.path).is_file())]
    if todo:
        spec_path.unlink(missing_ok=True)  # the folder is mid-rewrite until the spec is back
        jobs = [(p, str(folder), spec) for p in todo]
        with clip_progress(console, progress) as bar:
            task = bar.add_task("generating demo clips", total=len(jobs), note="")
            for _ in ordered_map(render_clip, jobs, workers or default_workers(len(jobs)), _render_crashed):
                bar.advance(task)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label", "speaker", "offset_s"])
    writer.writerows([p.path, p.label, p.speaker, f"{p.offset:.3f}"] for p in plans)
    atomic.write_text(labels_path, buf.getvalue())
    atomic.write_json(spec_path, asdict(spec))
    return labels_path


AWKWARD = ("no_audio.mp4", "voice_only.wav", "no_face.mp4", "empty.mp4", "not_media.mp4", "truncated.mp4")


def write_awkward_inputs(
    folder: str | Path, spec: MediaDemoSpec | None = None, example: str | Path | None = None
) -> list[Path]:
    """Inputs a deployed model meets sooner or later, for `auxformer-infer` to show what it does with
    them: a silent video, a voice without video, a video without a face, a zero-byte file, a text
    file named .mp4, and the first third of a real clip (`example`)."""
    spec = spec or MediaDemoSpec()
    folder = Path(folder)
    rng = np.random.default_rng(spec.seed + 1)
    seconds, look, voice = 1.2, random_look(rng), random_voice(rng)
    audio = synthesize(voice, VOICE_STYLES[0], seconds, 0.6, rng, spec.audio_rate)
    times = np.arange(round(seconds * spec.fps)) / spec.fps
    renderer = FaceRenderer(spec.size)
    faces = [renderer.frame(look, FACE_EXPRESSIONS[0], 0.8, float(t)) for t in times]
    blank = [np.full((spec.size, spec.size, 3), 96, np.uint8) for _ in times]
    write_clip(folder / "no_audio.mp4", faces, spec.fps, None, spec.audio_rate)
    write_clip(folder / "voice_only.wav", None, spec.fps, audio, spec.audio_rate)
    write_clip(folder / "no_face.mp4", blank, spec.fps, audio, spec.audio_rate)
    atomic.write_bytes(folder / "empty.mp4", b"")
    atomic.write_text(folder / "not_media.mp4", "this is a text file, not a video\n")
    if example is not None:
        data = Path(example).read_bytes()
        atomic.write_bytes(folder / "truncated.mp4", data[: len(data) // 3])
    return sorted(folder.iterdir())


def run_media_demo(
    out: str | Path,
    spec: MediaDemoSpec | None = None,
    settings: FeatureSettings | None = None,
    workers: int = 0,
    progress: bool = True,
    console: Console | None = None,
) -> tuple[FeatureCorpus, PrepareSummary]:
    """Generate (or reuse) the clips under `out/demo_media`, extract them into `out/demo_features`
    with the feature cache in `out/feature_cache`, and open the feature corpus."""
    console = console or Console()
    out = Path(out)
    labels_csv = generate_media(out / "demo_media", spec, workers, progress, console)
    media = read_csv_list(labels_csv, labels=list(LABELS))
    console.print(f"demo media: {len(media)} mp4 clips, {len(media.speakers)} speakers -> {labels_csv.parent}")
    summary = prepare(
        media,
        out / "demo_features",
        settings,
        workers,
        cache_dir=out / "feature_cache",
        progress=progress,
        console=console,
    )
    for line in summary.lines():
        console.print(line)
    awkward = write_awkward_inputs(out / "demo_awkward", spec, media.items[0].path)
    console.print(f"awkward inputs for auxformer-infer: {len(awkward)} files -> {out / 'demo_awkward'}")
    return FeatureCorpus.open(out / "demo_features"), summary
