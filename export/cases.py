"""The inputs verification runs: real clips of the run (its dev and test partitions) in padded batches,
the same with a modality removed, and batches cut to chosen (B, Ta, Tv) shapes, including all-false
masks for either modality."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from auxformer.runtime.batching import pad_batch, pad_to
from auxformer.runtime.contracts import ClipFeatures, FeatureError
from auxformer.train.corpus import FeatureCorpus
from auxformer.train.splits import read_splits

from .package import Source
from .request import DEFAULT_MAX_CLIPS

# (B, Ta, Tv): a single clip, a padded batch longer than any demo clip, and a wide batch whose video is
# longer than its audio; none equals the export example, so fixed axes cannot hide.
DEFAULT_SHAPES: tuple[tuple[int, int, int], ...] = ((1, 37, 11), (5, 301, 97), (32, 64, 200))
# condition -> which modality every clip loses ("mixed": a third lose audio, a third lose video)
CONDITIONS: dict[str, str | None] = {"full": None, "no audio": "audio", "no video": "video", "mixed": "mixed"}
DEFAULT_BATCH_SIZE = 16


@dataclass
class Batch:
    feeds: dict[str, np.ndarray]
    labels: np.ndarray  # class index per clip, -1 where unknown
    clip_ids: list[str]


@dataclass
class Case:
    name: str
    batches: list[Batch] = field(default_factory=list)

    @property
    def clips(self) -> int:
        return sum(len(b.clip_ids) for b in self.batches)


@dataclass
class ClipSet:
    clips: list[ClipFeatures]
    source: str  # where they came from, for the report
    labelled: bool


def verification_clips(
    source: Source, features: str | Path | None = None, max_clips: int = DEFAULT_MAX_CLIPS
) -> ClipSet:
    """`features` if given, else the run's dev + test clips from its training corpus, else synthetic
    clips drawn around the model's normalisation statistics (agreement only; no labels for F1)."""
    if features is not None:
        corpus = FeatureCorpus.open(features)
        return _from_corpus(corpus, [e.clip_id for e in corpus.entries], max_clips, f"{corpus.root}", source)
    corpus_path = _run_corpus(source)
    if corpus_path is not None:
        corpus = FeatureCorpus.open(corpus_path)
        held_out = [c for c, part in read_splits(source.run_dir).items() if part in ("dev", "test")]
        ids = held_out or [e.clip_id for e in corpus.entries]
        return _from_corpus(corpus, ids, max_clips, f"{corpus.root} (dev + test)", source)
    return ClipSet(_synthetic_clips(source, max_clips), "synthetic (the run's corpus was not found)", False)


def _run_corpus(source: Source) -> Path | None:
    recorded = source.ckpt.run.corpus
    if not recorded:
        return None
    # the path as training saw it, or the same folder inside the run (where the demo corpus lives)
    for candidate in (Path(recorded), source.run_dir / Path(recorded).name):
        if (candidate / "manifest.csv").is_file():
            return candidate
    return None


def _from_corpus(corpus: FeatureCorpus, ids: list[str], max_clips: int, where: str, source: Source) -> ClipSet:
    by_id = {e.clip_id: e for e in corpus.entries}
    entries = [by_id[i] for i in ids if i in by_id][:max_clips]
    if not entries:
        raise FeatureError(f"{where}: none of the clips to verify on are in the corpus")
    if corpus.video_dim != source.model.cfg.video_dim:
        raise FeatureError(
            f"{where}: video features have {corpus.video_dim} dims, the model expects {source.model.cfg.video_dim}"
        )
    clips = [corpus.load(e) for e in entries]
    labelled = all(c.label in source.labels for c in clips)
    return ClipSet(clips, f"{where}, {len(clips)} clips", labelled)


def _synthetic_clips(source: Source, count: int, seed: int = 0) -> list[ClipFeatures]:
    rng = np.random.default_rng(seed)
    stats = source.ckpt.run.length_stats
    norm = {m: getattr(source.model, f"{m}_norm") for m in ("audio", "video")}
    clips = []
    for i in range(min(count, 64)):
        arrays = {}
        for m in ("audio", "video"):
            s = stats.get(m, {"min": 10, "max": 100})
            n = int(rng.integers(s["min"], s["max"] + 1))
            mean, std = norm[m].mean.numpy(), norm[m].std.numpy()
            arrays[m] = (mean + std * rng.standard_normal((n, len(mean)))).astype(np.float32)
            arrays[f"{m}_mask"] = np.ones(n, bool)
        clips.append(ClipFeatures(f"synthetic_{i:03d}", **arrays))
    return clips


def build_cases(
    clip_set: ClipSet,
    labels: Sequence[str],
    shapes: Sequence[tuple[int, int, int]] = DEFAULT_SHAPES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
) -> list[Case]:
    index = {label: i for i, label in enumerate(labels)}
    clips = clip_set.clips
    cases = []
    for condition, missing in CONDITIONS.items():
        case = Case(f"clips, {condition}")
        for start in range(0, len(clips), batch_size):
            chunk = [_drop(c, missing, start + k) for k, c in enumerate(clips[start : start + batch_size])]
            case.batches.append(_batch(pad_batch(chunk), chunk, index))
        cases.append(case)
    rng = np.random.default_rng(seed)
    for b, ta, tv in shapes:
        chunk = [_crop(c, ta, tv, rng, whole=k == 0) for k, c in enumerate(itertools.islice(itertools.cycle(clips), b))]
        for condition, missing in CONDITIONS.items():
            if missing == "mixed":
                continue
            feeds = pad_to(pad_batch(chunk, missing=missing), len(chunk), ta, tv)
            cases.append(Case(f"{b}x{ta}x{tv}, {condition}", [_batch(feeds, chunk, index)]))
    return cases


def _drop(clip: ClipFeatures, missing: str | None, position: int) -> ClipFeatures:
    if missing == "mixed":
        missing = (None, "audio", "video")[position % 3]
    return clip if missing is None else clip.without(missing)


def _batch(feeds: dict[str, np.ndarray], clips: Sequence[ClipFeatures], index: dict[str, int]) -> Batch:
    labels = np.array([index.get(c.label or "", -1) for c in clips], np.int64)
    return Batch(feeds, labels, [c.clip_id for c in clips])


def _crop(clip: ClipFeatures, ta: int, tv: int, rng: np.random.Generator, whole: bool) -> ClipFeatures:
    """A prefix of the clip no longer than (ta, tv); ragged lengths so the batch is really padded."""
    lengths = {}
    for m, t in (("audio", ta), ("video", tv)):
        n = min(t, len(getattr(clip, f"{m}_mask")))
        # a stream of no frames (a video without audio) stays empty; padding gives it one masked step
        lengths[m] = n if whole or n == 0 else int(rng.integers(max(1, n // 3), n + 1))
    return ClipFeatures(
        clip.clip_id,
        clip.audio[: lengths["audio"]],
        clip.audio_mask[: lengths["audio"]],
        clip.video[: lengths["video"]],
        clip.video_mask[: lengths["video"]],
        label=clip.label,
        speaker=clip.speaker,
    )
