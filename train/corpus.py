"""Feature corpus on disk: `manifest.csv` + one `.npz` per clip (+ `corpus.json` metadata).

A clip's `.npz` may also hold utterance-level openSMILE functionals (`functionals.<set>` arrays, the
classical baseline's input; `corpus.json` lists the sets and their sizes under `functionals`). Corpora
written before them hold none and read as before.

Written by preparation (or the demo generator), read by training and export verification.
Every file is written atomically, and the manifest last, so an interrupted write leaves either
the previous corpus or no manifest at all, never a manifest that names missing clips.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.common import atomic
from auxformer.runtime.contracts import FUNCTIONALS, INPUTS, ClipFeatures, Status

MANIFEST = "manifest.csv"
METADATA = "corpus.json"
BASE_COLUMNS = ("clip_id", "speaker", "label", "path")


class CorpusError(ValueError):
    """A feature corpus that cannot be read as docs/architecture.md describes."""


PARTITIONS = ("train", "dev", "test")


def check_names(clip_id: str, label: str, split: str | None) -> None:
    """A label is a class name and a split one of PARTITIONS: neither may be a path (`../x`, `a/b`), since
    reports, plots and per-label folders are named after them."""
    if not label or label in (".", "..") or any(c in label for c in "/\\\0") or label != label.strip():
        raise CorpusError(
            f"{clip_id}: label {label!r} is not a class name (no path separators, no '..', no surrounding spaces)"
        )
    if split is not None and split not in PARTITIONS:
        raise CorpusError(f"{clip_id}: split {split!r} is not one of {', '.join(PARTITIONS)}")


@dataclass
class CorpusEntry:
    clip_id: str
    speaker: str
    label: str
    path: str  # relative to the corpus root
    split: str | None = None  # "train" / "dev" / "test" when the corpus fixes its own partition
    extra: dict[str, str] = field(default_factory=dict)


class FeatureCorpus:
    """Read access to a feature corpus folder. Clips are loaded on demand."""

    def __init__(self, root: Path, entries: list[CorpusEntry], metadata: dict[str, Any]):
        self.root = root
        self.entries = entries
        self.metadata = metadata

    @classmethod
    def open(cls, root: str | Path) -> FeatureCorpus:
        root = Path(root)
        manifest = root / MANIFEST
        if not manifest.is_file():
            raise CorpusError(f"{root} is not a feature corpus: {MANIFEST} is missing")
        with open(manifest, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in BASE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CorpusError(f"{manifest} lacks columns {missing}")
            entries = [_entry_from_row(row) for row in reader]
        if not entries:
            raise CorpusError(f"{manifest} lists no clips")
        meta_path = root / METADATA
        metadata = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        return cls(root, entries, metadata)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[CorpusEntry]:
        return iter(self.entries)

    @property
    def labels(self) -> list[str]:
        """Class names in model order: the corpus's declared order, else sorted."""
        declared = self.metadata.get("labels")
        found = sorted({e.label for e in self.entries})
        if declared:
            unknown = set(found) - set(declared)
            if unknown:
                raise CorpusError(f"labels {sorted(unknown)} are not among the declared {declared}")
            return list(declared)
        return found

    @property
    def speakers(self) -> list[str]:
        return sorted({e.speaker for e in self.entries})

    @property
    def video_dim(self) -> int:
        if "video_dim" in self.metadata:
            return int(self.metadata["video_dim"])
        return self.load(self.entries[0]).video_dim

    def load(self, entry: CorpusEntry) -> ClipFeatures:
        with np.load(self.root / entry.path) as data:
            arrays = {k: data[k] for k in INPUTS}
        return ClipFeatures(entry.clip_id, **arrays, label=entry.label, speaker=entry.speaker)

    @property
    def functional_sets(self) -> dict[str, int]:
        """The openSMILE functional sets its clips hold: {set name: dimension}."""
        return dict(self.metadata.get("functionals") or {})

    def functional_dim(self, feature_set: str) -> int:
        """The size of a functional set the corpus holds; a CorpusError saying how to get it if it holds none."""
        if feature_set not in self.functional_sets:
            held = ", ".join(self.functional_sets) or "none"
            raise CorpusError(
                f"{self.root} holds no {feature_set} functionals (it holds {held}): "
                f"prepare it again with --functionals {feature_set}"
            )
        return int(self.functional_sets[feature_set])

    def load_functionals(self, entries: Iterable[CorpusEntry], feature_set: str) -> tuple[np.ndarray, np.ndarray]:
        """float32 [N, D] functionals of `entries`, and bool [N]: false for clips without them (no audio),
        whose rows are zero."""
        dim = self.functional_dim(feature_set)
        entries = list(entries)
        values, present = np.zeros((len(entries), dim), np.float32), np.zeros(len(entries), bool)
        for i, entry in enumerate(entries):
            with np.load(self.root / entry.path, allow_pickle=False) as data:
                key = FUNCTIONALS + feature_set
                if key in data.files:
                    values[i], present[i] = data[key], True
        return values, present


def _entry_from_row(row: dict[str, str]) -> CorpusEntry:
    known = {*BASE_COLUMNS, "split"}
    return CorpusEntry(
        clip_id=row["clip_id"],
        speaker=row["speaker"],
        label=row["label"],
        path=row["path"],
        split=(row.get("split") or None),
        extra={k: v for k, v in row.items() if k not in known and v is not None},
    )


def clip_to_npz_bytes(clip: ClipFeatures) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **clip.arrays(), **{FUNCTIONALS + k: v for k, v in clip.functionals.items()})
    return buf.getvalue()


class CorpusWriter:
    """Write clips one by one, then the manifest; use as a context manager.

    >>> with CorpusWriter(folder, labels=["angry", "happy"]) as out:
    ...     out.add(clip)
    """

    def __init__(self, root: str | Path, labels: Iterable[str] | None = None, **metadata: Any):
        self.root = Path(root)
        self.rows: list[dict[str, str]] = []
        self.files: set[str] = set()
        self.metadata: dict[str, Any] = dict(metadata)
        if labels is not None:
            self.metadata["labels"] = list(labels)
        (self.root / "clips").mkdir(parents=True, exist_ok=True)

    def add(self, clip: ClipFeatures, split: str | None = None, **extra: Any) -> None:
        if clip.label is None or clip.speaker is None:
            raise CorpusError(f"{clip.clip_id}: a corpus clip needs a label and a speaker")
        check_names(clip.clip_id, clip.label, split)
        if any(r["clip_id"] == clip.clip_id for r in self.rows):
            raise CorpusError(f"clip id {clip.clip_id!r} appears twice: clip ids must be unique")
        rel = f"clips/{_safe_name(clip.clip_id)}.npz"
        if rel in self.files:  # two ids that differ only in characters a file name cannot keep
            digest = hashlib.blake2b(clip.clip_id.encode(), digest_size=4).hexdigest()
            rel = f"clips/{_safe_name(clip.clip_id)}-{digest}.npz"
        self.files.add(rel)
        atomic.write_bytes(self.root / rel, clip_to_npz_bytes(clip))
        row = {"clip_id": clip.clip_id, "speaker": clip.speaker, "label": clip.label, "path": rel}
        if split is not None:
            row["split"] = split
        row.update(
            audio_frames=str(len(clip.audio_mask)),
            video_frames=str(len(clip.video_mask)),
            has_audio=str(int(clip.has_audio)),
            has_video=str(int(clip.has_video)),
        )
        row.update({k: str(v) for k, v in extra.items() if k not in row})  # never shadow our own columns
        self.metadata.setdefault("video_dim", clip.video_dim)
        for name, values in clip.functionals.items():
            self.metadata.setdefault("functionals", {}).setdefault(name, len(values))
        self.rows.append(row)

    def close(self) -> None:
        columns: list[str] = list(BASE_COLUMNS)
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic.write_json(self.root / METADATA, self.metadata)
        atomic.write_text(self.root / MANIFEST, buf.getvalue())

    def __enter__(self) -> CorpusWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()


def _safe_name(clip_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in clip_id)


__all__ = ["ClipFeatures", "CorpusEntry", "CorpusError", "CorpusWriter", "FeatureCorpus", "Status"]
