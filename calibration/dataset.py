"""The INT8 calibration set: a stratified sample of a feature corpus, saved as padded batches.

Quantisers (onnxruntime's `quantize_static`, TensorRT's legacy calibrators) stream these batches one
at a time. The sample is stratified by label and by clip length, so activation ranges are seen for
every class and for short and long clips alike; batches group clips of similar length, as the runtime
does, so calibration does not spend its statistics on padding.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from auxformer.common import atomic
from auxformer.runtime.batching import pad_batch
from auxformer.runtime.contracts import INPUTS, ClipFeatures

DEFAULT_CLIPS = 512
LENGTH_BINS = 4  # quartiles of the audio length
INDEX = "calibration.json"


class CorpusEntry(Protocol):
    """What calibration reads of a corpus clip (the training package's feature-corpus entry is one)."""

    clip_id: str
    label: str
    extra: dict[str, str]  # frame counts, when the corpus lists them


class FeatureCorpus(Protocol):
    """What calibration reads of a feature corpus; calibration sits below training, so it names the
    shape it needs instead of importing the training package's corpus class."""

    root: Path

    @property
    def entries(self) -> Sequence[CorpusEntry]: ...

    def load(self, entry: Any) -> ClipFeatures: ...


def _length(entry: CorpusEntry, corpus: FeatureCorpus) -> int:
    if "audio_frames" in entry.extra:
        return int(entry.extra["audio_frames"])
    return len(corpus.load(entry).audio_mask)


def apportion(sizes: dict[Any, int], n: int) -> dict[Any, int]:
    """Split n draws over groups in proportion to their sizes (largest remainders), never more than a
    group holds."""
    total = sum(sizes.values())
    quota = {k: n * v / total for k, v in sizes.items()}
    take = {k: min(int(q), sizes[k]) for k, q in quota.items()}
    order = sorted(sizes, key=lambda k: (quota[k] - int(quota[k]), sizes[k]), reverse=True)
    while sum(take.values()) < min(n, total):  # more than one pass only when caps bind
        for k in order:
            if take[k] < sizes[k] and sum(take.values()) < n:
                take[k] += 1
    return take


def stratified_sample(
    corpus: FeatureCorpus, entries: Sequence[CorpusEntry] | None = None, n: int = DEFAULT_CLIPS, seed: int = 0
) -> list[CorpusEntry]:
    """Up to `n` entries: labels in proportion to the corpus, and within each label the length
    quartiles in proportion too."""
    pool = list(entries if entries is not None else corpus.entries)
    if n >= len(pool):
        return pool
    lengths = np.array([_length(e, corpus) for e in pool])
    edges = np.quantile(lengths, np.linspace(0, 1, LENGTH_BINS + 1)[1:-1])
    strata: dict[str, dict[int, list[CorpusEntry]]] = defaultdict(lambda: defaultdict(list))
    for entry, length in zip(pool, lengths, strict=True):
        strata[entry.label][int(np.searchsorted(edges, length, side="right"))].append(entry)
    rng = random.Random(seed)
    chosen: list[CorpusEntry] = []
    per_label = apportion({label: sum(map(len, bins.values())) for label, bins in strata.items()}, n)
    for label in sorted(strata):
        bins = strata[label]
        for b, k in sorted(apportion({b: len(v) for b, v in bins.items()}, per_label[label]).items()):
            chosen += rng.sample(bins[b], k)
    return chosen


@dataclass
class CalibrationSet:
    """Padded batches on disk (`batch_NNN.npz` with the model's four inputs) plus an index."""

    root: Path
    batches: list[str]
    clip_ids: list[list[str]]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for name in self.batches:
            with np.load(self.root / name) as data:
                yield {k: data[k] for k in INPUTS}

    @classmethod
    def open(cls, root: str | Path) -> CalibrationSet:
        root = Path(root)
        index = json.loads((root / INDEX).read_text())
        return cls(root, index["batches"], index["clip_ids"])


def write_calibration_set(
    corpus: FeatureCorpus,
    out: str | Path,
    entries: Sequence[CorpusEntry] | None = None,
    n: int = DEFAULT_CLIPS,
    batch_size: int = 32,
    seed: int = 0,
) -> CalibrationSet:
    """Sample, sort by length, pad into batches and write them (atomically, index last)."""
    out = Path(out)
    chosen = sorted(stratified_sample(corpus, entries, n, seed), key=lambda e: _length(e, corpus))
    names, ids = [], []
    for i in range(0, len(chosen), batch_size):
        group = chosen[i : i + batch_size]
        arrays = pad_batch([corpus.load(e) for e in group])
        name = f"batch_{i // batch_size:03d}.npz"
        with atomic.atomic_path(out / name) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        names.append(name)
        ids.append([e.clip_id for e in group])
    atomic.write_json(
        out / INDEX, {"batches": names, "clip_ids": ids, "corpus": str(corpus.root), "clips": len(chosen), "seed": seed}
    )
    return CalibrationSet(out, names, ids)
