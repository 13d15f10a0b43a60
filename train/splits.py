"""Speaker-independent partitions: no speaker appears in two of train / dev / test."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from auxformer.common import atomic
from auxformer.train.corpus import PARTITIONS, CorpusEntry, CorpusError


def speaker_split(
    entries: Sequence[CorpusEntry], seed: int, fractions: Sequence[float] = (0.7, 0.15, 0.15)
) -> dict[str, list[CorpusEntry]]:
    """Random 70/15/15 split of *speakers* from `seed`; an explicit `split` column wins when present."""
    declared = [e.split for e in entries]
    if any(declared):
        return _declared_split(entries)
    if abs(sum(fractions) - 1) > 1e-6 or len(fractions) != 3:
        raise ValueError(f"split fractions must be three numbers summing to 1, got {fractions}")
    speakers = sorted({e.speaker for e in entries})
    if len(speakers) < 3:
        raise CorpusError(f"a speaker-independent split needs >= 3 speakers, the corpus has {len(speakers)}")
    random.Random(seed).shuffle(speakers)
    n_train = max(1, round(fractions[0] * len(speakers)))
    n_dev = max(1, round(fractions[1] * len(speakers)))
    n_train = min(n_train, len(speakers) - n_dev - 1)  # leave at least one test speaker
    groups = {
        "train": set(speakers[:n_train]),
        "dev": set(speakers[n_train : n_train + n_dev]),
        "test": set(speakers[n_train + n_dev :]),
    }
    return {p: [e for e in entries if e.speaker in groups[p]] for p in PARTITIONS}


def leave_one_speaker_out(entries: Sequence[CorpusEntry]) -> list[tuple[str, str, list[CorpusEntry]]]:
    """One fold per speaker: (test speaker, dev speaker, the entries with their `split` set). The dev
    speaker (for early stopping / model choice) is the next speaker in sorted order; the rest train."""
    speakers = sorted({e.speaker for e in entries})
    if len(speakers) < 3:
        raise CorpusError(f"leave-one-speaker-out needs >= 3 speakers, the corpus has {len(speakers)}")
    folds = []
    for i, test in enumerate(speakers):
        dev = speakers[(i + 1) % len(speakers)]
        split = {test: "test", dev: "dev"}
        folds.append((test, dev, [replace(e, split=split.get(e.speaker, "train")) for e in entries]))
    return folds


def write_splits(path: str | Path, parts: dict[str, list[CorpusEntry]]) -> None:
    """A run's `splits.csv`: clip_id, speaker, label, partition."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["clip_id", "speaker", "label", "partition"])
    for p in PARTITIONS:
        writer.writerows([e.clip_id, e.speaker, e.label, p] for e in parts[p])
    atomic.write_text(Path(path), buf.getvalue())


def read_splits(run_dir: str | Path) -> dict[str, str]:
    """{clip_id: partition} from a run folder's `splits.csv` (empty when the run has none)."""
    path = Path(run_dir) / "splits.csv"
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["clip_id"]: row["partition"] for row in csv.DictReader(fh)}


def _declared_split(entries: Sequence[CorpusEntry]) -> dict[str, list[CorpusEntry]]:
    unknown = {e.split for e in entries} - set(PARTITIONS)
    if unknown:
        raise CorpusError(f"split column has values {sorted(map(str, unknown))}; expected {PARTITIONS}")
    parts = {p: [e for e in entries if e.split == p] for p in PARTITIONS}
    empty = [p for p in ("train", "dev") if not parts[p]]
    if empty:
        raise CorpusError(f"the corpus's split column leaves {', '.join(empty)} empty")
    return parts
