"""CREMA-D in its released layout.

    root/AudioWAV/1001_DFA_ANG_XX.wav
    root/VideoFlash/1001_DFA_ANG_XX.flv        (or VideoMP4/*.mp4 copies; the videos carry the audio)
    root/processedResults/summaryTable.csv     (plurality votes per modality)
    root/processedResults/tabulatedVotes.csv   (vote counts per modality)

File names are ActorID_Sentence_Emotion_Level; the actor is the speaker. When the metadata is there,
the summary table's votes and levels per modality go to the manifest as extra columns. Labels come from the
intended emotion (the file name) or from the crowd's votes on the voice alone, the face alone or the
audio-visual clip. `tabulatedVotes.csv` holds three rows per clip, told apart by the first digit of
its index: 1 = voice, 2 = face, 3 = audio-visual (each row's `emoVote` agrees with the matching column
of `summaryTable.csv`). Rules for votes:

- plurality: the class with the most votes; clips whose top classes tie are left out;
- majority: the top class only when it has more than half of the votes;
- distribution: every clip with votes; the label is the plurality class (a tie goes to the intended
  emotion when it is among the tied, else to the first tied class in label order) and the vote
  shares go to the manifest as `p_<class>` columns for soft-label training.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import CorpusLayoutError, MediaCorpus, MediaItem, find_media

LABELS = ("anger", "disgust", "fear", "happy", "neutral", "sad")
INTENDED = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
VOTE_COLUMNS = ("A", "D", "F", "H", "N", "S")  # same order as LABELS
SOURCES = ("intended", "voice", "face", "audiovisual")
RULES = ("plurality", "majority", "distribution")
SOURCE_DIGIT = {"1": "voice", "2": "face", "3": "audiovisual"}
SUMMARY_COLUMNS = ("VoiceVote", "VoiceLevel", "FaceVote", "FaceLevel", "MultiModalVote", "MultiModalLevel")
# where to look for media, best first; the videos carry the audio track
MEDIA_FOLDERS = {"video": ("VideoMP4", "VideoFlash"), "audio": ("AudioWAV",)}


@dataclass(frozen=True)
class ClipName:
    actor: str
    sentence: str
    emotion: str  # one of LABELS
    level: str  # LO / MD / HI / XX (unspecified)


def parse_name(name: str) -> ClipName:
    parts = name.split("_")
    if len(parts) != 4 or parts[2] not in INTENDED or not parts[0].isdigit():
        raise ValueError(f"{name!r} is not a CREMA-D clip name (ActorID_Sentence_Emotion_Level)")
    return ClipName(parts[0], parts[1], INTENDED[parts[2]], parts[3])


def metadata_folder(root: Path, metadata_dir: Path | None = None, required: bool = True) -> Path | None:
    for folder in (metadata_dir, root / "processedResults", root):
        if folder is not None and (folder / "tabulatedVotes.csv").is_file():
            return folder
    if not required:
        return None
    raise CorpusLayoutError(
        f"no tabulatedVotes.csv in {root}/processedResults (or the metadata folder given): "
        "vote-based labels need CREMA-D's processedResults"
    )


def read_summary(metadata_dir: Path) -> dict[str, dict[str, str]]:
    """clip name -> the summary table's votes and levels (mean rated intensity), as manifest columns."""
    path = metadata_dir / "summaryTable.csv"
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {
            row["FileName"]: {column: row[column] for column in SUMMARY_COLUMNS if column in row}
            for row in csv.DictReader(fh)
        }


def read_vote_counts(metadata_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """source ('voice' | 'face' | 'audiovisual') -> clip name -> vote counts in LABELS order."""
    votes: dict[str, dict[str, np.ndarray]] = {s: {} for s in SOURCE_DIGIT.values()}
    with open(metadata_dir / "tabulatedVotes.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            source = SOURCE_DIGIT.get(row[""][:1])
            if source is None:
                raise CorpusLayoutError(f"tabulatedVotes.csv row index {row['']!r} does not start with 1, 2 or 3")
            votes[source][row["fileName"]] = np.array([int(row[c]) for c in VOTE_COLUMNS])
    return votes


def vote_label(counts: np.ndarray, rule: str, intended: str | None = None) -> str | None:
    """The label `rule` gives these vote counts (LABELS order), or None when it gives none."""
    total = counts.sum()
    if total == 0:
        return None
    top = np.flatnonzero(counts == counts.max())
    if rule == "majority":
        return LABELS[top[0]] if len(top) == 1 and counts[top[0]] > total / 2 else None
    if len(top) == 1:
        return LABELS[top[0]]
    if rule == "distribution":
        tied = [LABELS[i] for i in top]
        return intended if intended in tied else tied[0]
    return None  # plurality with a tie


def read_labels(metadata_dir: Path, source: str, rule: str) -> dict[str, tuple[str, np.ndarray]]:
    """clip name -> (label, vote shares) under `source` and `rule`; clips without a label are left out."""
    if source not in SOURCE_DIGIT.values():
        raise ValueError(f"vote source must be one of voice, face, audiovisual, got {source!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    out = {}
    for name, counts in read_vote_counts(metadata_dir)[source].items():
        label = vote_label(counts, rule, parse_name(name).emotion)
        if label is not None:
            out[name] = (label, counts / counts.sum())
    return out


def media_files(root: Path, media: str = "video") -> dict[str, Path]:
    """clip name -> media file, from the first of the layout's folders that holds it."""
    if media not in MEDIA_FOLDERS:
        raise ValueError(f"media must be 'video' or 'audio', got {media!r}")
    found: dict[str, Path] = {}
    for folder in MEDIA_FOLDERS[media]:
        if (root / folder).is_dir():
            for path in find_media(root / folder):
                found.setdefault(path.stem, path)
    return found


def read_cremad(
    root: str | Path,
    labels_from: str = "intended",
    rule: str = "plurality",
    media: str = "video",
    metadata_dir: str | Path | None = None,
) -> MediaCorpus:
    root = Path(root)
    if labels_from not in SOURCES:
        raise ValueError(f"labels_from must be one of {', '.join(SOURCES)}, got {labels_from!r}")
    files = media_files(root, media)
    if not files:
        raise CorpusLayoutError(f"no CREMA-D media under {root}/{{{','.join(MEDIA_FOLDERS[media])}}}")
    meta = metadata_folder(root, Path(metadata_dir) if metadata_dir else None, required=labels_from != "intended")
    votes = read_labels(meta, labels_from, rule) if meta is not None and labels_from != "intended" else None
    summary = read_summary(meta) if meta is not None else {}
    items, notes, unnamed, unlabelled = [], [], 0, 0
    for name, path in sorted(files.items()):
        try:
            clip = parse_name(name)
        except ValueError:
            unnamed += 1
            continue
        extra = {"intended": clip.emotion, "level": clip.level, "sentence": clip.sentence, **summary.get(name, {})}
        label = clip.emotion
        if votes is not None:
            if name not in votes:
                unlabelled += 1
                continue
            label, shares = votes[name]
            if rule == "distribution":
                extra.update({f"p_{c}": f"{p:.4f}" for c, p in zip(LABELS, shares, strict=True)})
        items.append(MediaItem(path, name, label, clip.actor, extra=extra))
    if unnamed:
        notes.append(f"{unnamed} files without a CREMA-D name were skipped")
    if unlabelled:
        why = "ties" if rule == "plurality" else "no majority"
        notes.append(f"{unlabelled} clips have no {labels_from} label under the {rule} rule ({why}): left out")
    options = {"labels_from": labels_from, "rule": rule if votes is not None else None, "media": media}
    return MediaCorpus("crema-d", items, list(LABELS), notes, options)
