"""Media corpora: where the clips are and what their labels and speakers are.

Every reader returns a `MediaCorpus`: a list of `MediaItem(path, clip_id, label, speaker, split)`
in a fixed order, the label set in model order, and notes on what it left out and why.

- `cremad.read_cremad(root, labels_from=..., rule=...)`: CREMA-D in its released layout;
- `msp_improv.read_msp_improv(root, split=...)`: MSP-IMPROV with its `Evaluation.txt`;
- `emodb.read_emodb(root)`: EmoDB (`root/wav/SSTTTEV.wav`, audio only);
- `folder.read_label_folders(root)`: `root/<label>/*.mp4`; `folder.read_csv_list(csv)`: `path,label[,speaker][,split]`.

`open_media_corpus(source, kind="auto", **options)` picks the reader.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auxformer.runtime.contracts import MEDIA_SUFFIXES
from auxformer.train.corpus import CorpusError, check_names

KINDS = ("auto", "cremad", "msp-improv", "emodb", "folder", "csv")


@dataclass(frozen=True)
class MediaItem:
    path: Path
    clip_id: str
    label: str
    speaker: str
    split: str | None = None  # "train" / "dev" / "test" when the corpus fixes the partition
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # manifest columns


@dataclass
class MediaCorpus:
    name: str
    items: list[MediaItem]
    labels: list[str]
    notes: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # how it was read, for corpus.json

    def __len__(self) -> int:
        return len(self.items)

    @property
    def speakers(self) -> list[str]:
        return sorted({i.speaker for i in self.items})

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "clips": len(self.items), "speakers": len(self.speakers), **self.options}


class CorpusLayoutError(ValueError):
    """A folder that does not look like the corpus it was read as."""


def detect_kind(source: Path) -> str:
    if source.is_file() and source.suffix.lower() == ".csv":
        return "csv"
    if (source / "AudioWAV").is_dir() or (source / "VideoFlash").is_dir() or (source / "VideoMP4").is_dir():
        return "cremad"
    if (source / "Evaluation.txt").is_file():
        return "msp-improv"
    from .emodb import media_folder  # the package's readers import this module

    if source.is_dir() and media_folder(source) is not None:
        return "emodb"
    return "folder"


def open_media_corpus(source: str | Path, kind: str = "auto", **options: Any) -> MediaCorpus:
    """Read a media corpus; `options` go to the reader (see each reader's arguments)."""
    from . import cremad, emodb, folder, msp_improv

    source = Path(source)
    if not source.exists():
        raise CorpusLayoutError(f"{source} does not exist")
    kind = detect_kind(source) if kind == "auto" else kind
    readers = {
        "cremad": cremad.read_cremad,
        "msp-improv": msp_improv.read_msp_improv,
        "emodb": emodb.read_emodb,
        "folder": folder.read_label_folders,
        "csv": folder.read_csv_list,
    }
    if kind not in readers:
        raise ValueError(f"unknown corpus kind {kind!r}: use one of {', '.join(KINDS)}")
    reader = readers[kind]
    given = {k: v for k, v in options.items() if v is not None}
    accepted = set(inspect.signature(reader).parameters)
    wrong = sorted(set(given) - accepted)
    if wrong:
        takes = ", ".join(sorted(accepted - {"root", "csv_path"}))
        raise ValueError(f"{', '.join(wrong)} do not apply to {kind} corpora (they take {takes})")
    corpus = reader(source, **given)
    for item in corpus.items:  # before any extraction: a path in a label or split is the list's mistake
        try:
            check_names(item.clip_id, item.label, item.split)
        except CorpusError as err:
            raise CorpusLayoutError(f"{source}: {err}") from None
    return corpus


def find_media(root: Path, pattern: str = "*") -> list[Path]:
    """Media files under `root` matching `pattern`, sorted, by suffix (hidden files skipped)."""
    found = (p for p in root.rglob(pattern) if p.suffix.lower() in MEDIA_SUFFIXES and not p.name.startswith("."))
    return sorted(p for p in found if p.is_file())
