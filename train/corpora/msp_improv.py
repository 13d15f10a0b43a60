"""MSP-IMPROV with its `Evaluation.txt` perceptual evaluations.

    root/Evaluation.txt
    root/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.avi   (and .wav)

`Evaluation.txt` has one block per clip: a header line
`UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:3.0; V:2.5; D:3.0 ; N:3.4;` (the consensus category, then
activation, valence, dominance, naturalness) followed by one line per rater, `rater; Category; ...`.
Labels (4 classes as in the paper): the raters' plurality category among angry, happy, neutral and
sad, ties and other categories left out (`labels_from="plurality"`); or the header's consensus
(`labels_from="consensus"`). The name gives the speaker (F01 = female of session 1): session `s` holds
F0s and M0s. Splits: "random" (speaker-independent, drawn at training) or "session:N" (test =
session N, dev = the next session, train = the other four).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import CorpusLayoutError, MediaCorpus, MediaItem, find_media

LABELS = ("angry", "happy", "neutral", "sad")
CODES = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}
SESSIONS = 6
HEADER = re.compile(r"^(?:UTD|MSP)-IMPROV-(?P<name>[A-Z0-9-]+)\.\w+;\s*(?P<code>[A-Za-z]);")
NAME = re.compile(
    r"^S(?P<sentence>\d\d)(?P<target>[A-Z])-(?P<speaker>[FM]\d\d)-(?P<scenario>[A-Z])-(?P<pair>[A-Z]{2}\d\d)$"
)
VIDEO_FIRST = (".avi", ".mp4", ".mkv", ".wav")


@dataclass
class Evaluation:
    consensus: str  # header category code
    ratings: dict[str, str] = field(default_factory=dict)  # rater -> category code (first letter)

    def plurality(self) -> str | None:
        counts = Counter(self.ratings.values()).most_common()
        if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
            return None
        return counts[0][0]


def parse_evaluation(path: Path) -> dict[str, Evaluation]:
    """clip name (without the UTD-/MSP-IMPROV- prefix and suffix) -> its evaluation."""
    evaluations: dict[str, Evaluation] = {}
    current: Evaluation | None = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            header = HEADER.match(line)
            if header:
                current = evaluations.setdefault(header["name"], Evaluation(header["code"].upper()))
                continue
            fields = [f.strip() for f in line.split(";")]
            if current is not None and len(fields) > 1 and fields[1]:
                current.ratings.setdefault(fields[0], fields[1][0].upper())  # a rater counts once
    if not evaluations:
        raise CorpusLayoutError(f"{path} has no clip headers like 'UTD-IMPROV-S01A-F01-P-FM01.avi; A; ...'")
    return evaluations


def session_of(speaker: str) -> int:
    return int(speaker[1:])


def split_for(session: int, split: str) -> str | None:
    if split == "random":
        return None
    test = int(split.split(":", 1)[1])
    dev = test % SESSIONS + 1
    return "test" if session == test else "dev" if session == dev else "train"


def read_msp_improv(
    root: str | Path, split: str = "random", labels_from: str = "plurality", evaluation: str | Path | None = None
) -> MediaCorpus:
    root = Path(root)
    if not (split == "random" or re.fullmatch(r"session:[1-6]", split)):
        raise ValueError(f"split must be 'random' or 'session:N' with N in 1..{SESSIONS}, got {split!r}")
    if labels_from not in ("plurality", "consensus"):
        raise ValueError(f"labels_from must be 'plurality' or 'consensus', got {labels_from!r}")
    evaluations = parse_evaluation(Path(evaluation) if evaluation else root / "Evaluation.txt")
    files: dict[str, Path] = {}
    for path in sorted(find_media(root), key=lambda p: VIDEO_FIRST.index(p.suffix) if p.suffix in VIDEO_FIRST else 9):
        files.setdefault(path.stem.split("-IMPROV-", 1)[-1], path)
    items, skipped = [], Counter()
    for name, ev in sorted(evaluations.items()):
        parsed = NAME.match(name)
        code = ev.plurality() if labels_from == "plurality" else ev.consensus
        if parsed is None:
            skipped["names not in the MSP-IMPROV pattern"] += 1
        elif code not in CODES:
            skipped["clips without a 4-class label (tie, other, unknown)"] += 1
        elif name not in files:
            skipped["evaluated clips without a media file"] += 1
        else:
            speaker = parsed["speaker"]
            session = session_of(speaker)
            extra = {"session": session, "scenario": parsed["scenario"], "target": parsed["target"]}
            items.append(MediaItem(files[name], name, CODES[code], speaker, split_for(session, split), extra))
    if not items:
        raise CorpusLayoutError(f"no labelled MSP-IMPROV clip with media under {root}")
    notes = [f"{n} {what} were left out" for what, n in skipped.items()]
    return MediaCorpus("msp-improv", items, list(LABELS), notes, {"labels_from": labels_from, "split": split})
