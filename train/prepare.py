"""Media corpus -> feature corpus (the format of docs/architecture.md), through the extraction pool and cache.

Usable clips go to the feature corpus; failed clips and clips with neither modality are left out.
Every clip, kept or not, gets a row in `prepare_report.csv` with its status and reason. `corpus.json`
records the feature spec (audio features, video embedder and dim, the full FeatureSettings) so a
model trained on the corpus can later refuse features made differently. Clips also get the utterance-level
openSMILE functionals of the sets asked for (the classical baseline's input), from the same decoded audio.
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from auxformer.common import atomic
from auxformer.runtime.contracts import ClipFeatures, Status
from auxformer.runtime.extract_pool import extract_many
from auxformer.runtime.features import FeatureSettings

from .config import ClassicalConfig
from .corpora import MediaCorpus
from .corpus import CorpusWriter

REPORT = "prepare_report.csv"
SKIPPED = (Status.FAILED, Status.EMPTY)
# the functionals the classical baseline reads by default; more sets cost ~0.1 s per 2 s clip each
DEFAULT_FUNCTIONALS = (ClassicalConfig.feature_set,)


@dataclass
class PrepareSummary:
    corpus: Path
    clips: int
    written: int
    counts: dict[str, int]
    cached: int
    face_rate: float  # frames with a face / frames, over clips with a video stream
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds else 0.0

    def lines(self) -> list[str]:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        return [
            f"features: {self.written}/{self.clips} clips -> {self.corpus} ({counts}; {self.cached} from cache)",
            f"face detection rate: {self.face_rate:.1%} of video frames",
            f"extraction: {self.seconds:.1f} s, {self.clips_per_second:.1f} clips/s",
            *self.notes,
        ]


class FaceRate:
    """Running frames-with-a-face / frames over clips that have video frames."""

    def __init__(self) -> None:
        self.faces = self.frames = 0

    def add(self, clip: ClipFeatures) -> None:
        self.frames += len(clip.video_mask)
        self.faces += int(clip.video_mask.sum())

    @property
    def rate(self) -> float:
        return self.faces / self.frames if self.frames else 0.0


def prepare(
    corpus: MediaCorpus,
    out: str | Path,
    settings: FeatureSettings | None = None,
    workers: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    console: Console | None = None,
    limit: int | None = None,
    functionals: tuple[str, ...] = DEFAULT_FUNCTIONALS,
) -> PrepareSummary:
    settings = settings or FeatureSettings()
    out = Path(out)
    items = corpus.items[:limit] if limit else corpus.items
    t0 = time.perf_counter()
    counts: Counter[str] = Counter()
    faces, cached, report = FaceRate(), 0, []
    metadata: dict[str, Any] = {**settings.feature_spec(), "source": corpus.describe(), "source_notes": corpus.notes}
    with CorpusWriter(out, labels=corpus.labels, **metadata) as writer:
        jobs = [(str(item.path), item.clip_id) for item in items]
        clips = extract_many(jobs, settings, workers, cache_dir, progress, console, functionals=functionals)
        for item, clip in zip(items, clips, strict=True):
            counts[clip.status.value] += 1
            cached += bool(clip.info.get("cached"))
            faces.add(clip)
            report.append(_report_row(item.clip_id, item.path, clip))
            if clip.status in SKIPPED:
                continue
            clip.label, clip.speaker = item.label, item.speaker
            # the corpus's own columns win over a source CSV's columns of the same name
            columns = {
                **item.extra,
                "status": clip.status.value,
                "source": str(item.path),
                "face_rate": f"{clip.info.get('face_rate', 0.0):.3f}",
            }
            writer.add(clip, split=item.split, **columns)
        _write_report(out / REPORT, report)
        if not writer.rows:
            raise RuntimeError(f"no usable clip among {len(items)}: see the reasons in {out / REPORT}")
        summary = PrepareSummary(
            out, len(items), len(writer.rows), dict(counts), cached, faces.rate, time.perf_counter() - t0
        )
        writer.metadata.update(
            extraction={"counts": summary.counts, "face_detection_rate": round(faces.rate, 4), "clips": len(items)}
        )
    summary.notes = list(corpus.notes)
    return summary


def _report_row(clip_id: str, path: Path, clip: ClipFeatures) -> dict[str, str]:
    return {
        "clip_id": clip_id,
        "path": str(path),
        "status": clip.status.value,
        "reason": clip.reason,
        "audio_frames": str(len(clip.audio_mask)),
        "video_frames": str(len(clip.video_mask)),
        "face_rate": f"{clip.info.get('face_rate', 0.0):.3f}",
        "cached": str(int(bool(clip.info.get("cached")))),
    }


def _write_report(path: Path, rows: list[dict[str, str]]) -> None:
    if not rows:
        raise RuntimeError("the media corpus lists no clips")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buf.getvalue())
