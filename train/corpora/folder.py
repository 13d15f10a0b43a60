"""Generic media corpora: label folders (`root/<label>/*.mp4`), or any files listed in a CSV.

Speakers make splits speaker-independent. Label folders have no speaker column: give a regular
expression whose first group finds the speaker in the file name (e.g. `^(\\d+)_` for
`1001_x.mp4`); without one every clip is its own speaker, and the note says the split will then be
by clip, not by person.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from . import CorpusLayoutError, MediaCorpus, MediaItem, find_media

NO_SPEAKER_NOTE = "no speakers given: every clip counts as its own speaker, so splits are by clip, not by person"


def _speaker(path: Path, pattern: re.Pattern[str] | None) -> str | None:
    if pattern is None:
        return None
    found = pattern.search(path.stem)
    return found.group(1) if found else None


def read_label_folders(root: str | Path, speaker_pattern: str | None = None) -> MediaCorpus:
    root = Path(root)
    pattern = re.compile(speaker_pattern) if speaker_pattern else None
    labels = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    items, unmatched = [], 0
    for label in labels:
        for path in find_media(root / label):
            clip_id = path.relative_to(root).as_posix()  # with its suffix: x.mp4 and x.wav are two clips
            speaker = _speaker(path, pattern)
            unmatched += pattern is not None and speaker is None
            items.append(MediaItem(path, clip_id, label, speaker or clip_id))
    if not items:
        raise CorpusLayoutError(f"no media files in label folders under {root} (expected {root}/<label>/*.mp4)")
    notes = [] if pattern else [NO_SPEAKER_NOTE]
    if unmatched:
        notes.append(f"{unmatched} file names did not match the speaker pattern: each is its own speaker")
    used = sorted({i.label for i in items})
    return MediaCorpus(root.name, items, used, notes, {"layout": "label folders", "speaker_pattern": speaker_pattern})


def read_csv_list(csv_path: str | Path, root: str | Path | None = None, labels: list[str] | None = None) -> MediaCorpus:
    """Rows `path,label[,speaker][,split]`; paths are relative to `root` (default: the CSV's folder)."""
    csv_path = Path(csv_path)
    base = Path(root) if root else csv_path.parent
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if "path" not in columns or "label" not in columns:
            raise CorpusLayoutError(f"{csv_path} needs a header with path and label (and optionally speaker, split)")
        rows = list(reader)
    items, missing, unlabelled = [], 0, 0
    for row in rows:
        if not (row.get("label") or "").strip():
            unlabelled += 1  # a clip to train on needs a label: say so now, not after its extraction
            continue
        path = base / row["path"]
        if not path.exists():
            missing += 1  # listed but absent: extraction would fail it anyway, say so up front
        clip_id = Path(row["path"]).as_posix()  # with its suffix: x.mp4 and x.wav are two clips
        extra = {k: v for k, v in row.items() if k not in ("path", "label", "speaker", "split") and v is not None}
        items.append(
            MediaItem(path, clip_id, row["label"], row.get("speaker") or clip_id, row.get("split") or None, extra)
        )
    if not items:
        raise CorpusLayoutError(f"{csv_path} lists no clips")
    notes = [] if "speaker" in columns else [NO_SPEAKER_NOTE]
    if missing:
        notes.append(f"{missing} listed files do not exist (they will be reported as failed)")
    if unlabelled:
        notes.append(f"{unlabelled} rows without a label were left out")
    return MediaCorpus(
        csv_path.stem,
        items,
        list(labels) if labels else sorted({i.label for i in items}),
        notes,
        {"layout": "csv list"},
    )
