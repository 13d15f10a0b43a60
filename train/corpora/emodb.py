"""EmoDB (Berlin Database of Emotional Speech) in its released layout.

    root/wav/03a01Fa.wav        (or the .wav files directly in root)

File names are `SSTTTEV.wav`: `SS` speaker (two digits), `TTT` sentence code (`a01`..`b10`), `E` the
acted emotion as a German initial, `V` the version (a letter). Ten actors speak ten sentences in seven
emotions; the corpus is audio only, so its clips have no video (missing, masked). The speaker makes
splits speaker-independent; sentence, version and the speaker's sex go to the manifest as columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import CorpusLayoutError, MediaCorpus, MediaItem, find_media

# model order: the order of the letters in the corpus's documentation
EMOTIONS = {
    "W": "anger",  # Wut
    "L": "boredom",  # Langeweile
    "E": "disgust",  # Ekel
    "A": "fear",  # Angst
    "F": "happiness",  # Freude
    "T": "sadness",  # Trauer
    "N": "neutral",
}
LABELS = tuple(EMOTIONS.values())
# the corpus documentation's speaker list
SEX = {"03": "m", "08": "f", "09": "f", "10": "m", "11": "m", "12": "m", "13": "f", "14": "f", "15": "m", "16": "f"}
NAME = re.compile(r"^(?P<speaker>\d\d)(?P<sentence>[ab]\d\d)(?P<emotion>[WLEAFTN])(?P<version>[a-z])$")


@dataclass(frozen=True)
class ClipName:
    speaker: str
    sentence: str
    emotion: str  # one of LABELS
    version: str


def parse_name(stem: str) -> ClipName:
    found = NAME.match(stem)
    if found is None:
        raise ValueError(f"{stem!r} is not an EmoDB clip name (SSTTTEV: speaker, sentence, emotion letter, version)")
    return ClipName(found["speaker"], found["sentence"], EMOTIONS[found["emotion"]], found["version"])


def media_folder(root: Path) -> Path | None:
    """Where the clips are (`root/wav`, or root itself), or None when neither holds an EmoDB name."""
    for folder in (root / "wav", root):
        if folder.is_dir() and any(NAME.match(p.stem) for p in folder.glob("*.wav")):
            return folder
    return None


def read_emodb(root: str | Path) -> MediaCorpus:
    root = Path(root)
    folder = media_folder(root)
    if folder is None:
        raise CorpusLayoutError(f"no EmoDB clips (SSTTTEV.wav) in {root}/wav or {root}")
    items, unnamed = [], 0
    for path in find_media(folder, "*.wav"):
        try:
            clip = parse_name(path.stem)
        except ValueError:
            unnamed += 1
            continue
        extra = {"sentence": clip.sentence, "version": clip.version, "sex": SEX.get(clip.speaker, "")}
        items.append(MediaItem(path, path.stem, clip.emotion, clip.speaker, extra=extra))
    notes = [f"{unnamed} files without an EmoDB name were skipped"] if unnamed else []
    notes.append("EmoDB is audio only: every clip's video is missing")
    return MediaCorpus("emodb", items, list(LABELS), notes, {"layout": "emodb"})
