"""A stream's segments on disk: `timeline.jsonl` (one `Segment.to_dict()` per line) and `timeline.csv`
(one flat row per window), both appended and fsynced segment by segment, so whatever stops the run
(Ctrl-C, a stalled source, a crash) leaves two valid files holding every segment made before it.
At worst a kill -9 during a write leaves a torn last line, which `read_segments` ignores.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from auxformer.common import atomic

from .contracts import Status
from .results import OutputError
from .segment import Segment

TIMELINE_JSONL, TIMELINE_CSV = "timeline.jsonl", "timeline.csv"


def csv_fields(labels: list[str], heads: list[str]) -> list[str]:
    return [
        "start",
        "end",
        "status",
        "label",
        *(f"p_{label}" for label in labels),
        *(f"label_{head}" for head in heads),
        "has_audio",
        "has_video",
        "reason",
    ]


def csv_row(segment: Segment, labels: list[str], heads: list[str]) -> dict[str, Any]:
    probabilities = segment.probabilities or {}
    row: dict[str, Any] = {
        "start": f"{segment.start:.3f}",
        "end": f"{segment.end:.3f}",
        "status": segment.status.value,
        "label": segment.label or "",
    }
    row |= {f"p_{label}": f"{probabilities[label]:.6f}" if label in probabilities else "" for label in labels}
    for head in heads:  # each head's own answer; empty where its modalities are absent
        probs = segment.heads.get(head)
        row[f"label_{head}"] = max(probs, key=probs.__getitem__) if probs else ""
    row |= {
        "has_audio": int(segment.present.get("audio", False)),
        "has_video": int(segment.present.get("video", False)),
        "reason": segment.reason,
    }
    return row


class _AppendFile:
    def __init__(self, path: Path):
        self.path = path
        self.size = 0  # bytes of complete rows
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o666)
        except OSError as err:
            raise OutputError(f"cannot write {path}: {err.strerror}") from err

    def append(self, data: bytes) -> None:
        try:
            atomic.append_durably(self.fd, data)
        except OSError as err:
            raise OutputError(f"writing {self.path} failed: {err.strerror}") from err
        self.size += len(data)

    def on_disk(self) -> int:
        return os.fstat(self.fd).st_size

    def cut(self, size: int) -> None:
        os.ftruncate(self.fd, size)
        self.size = size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class TimelineWriter:
    """`timeline.jsonl` and `timeline.csv` in `folder`, written as segments come."""

    def __init__(self, folder: Path, labels: list[str], heads: list[str], source: str):
        self.labels, self.heads, self.source = labels, heads, source
        self.jsonl = _AppendFile(folder / TIMELINE_JSONL)
        self.csv = _AppendFile(folder / TIMELINE_CSV)
        self.fields = csv_fields(labels, heads)
        self.csv.append(self._csv_lines([dict(zip(self.fields, self.fields, strict=True))]))
        self.count = 0

    def _csv_lines(self, rows: list[dict[str, Any]]) -> bytes:
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=self.fields, lineterminator="\n").writerows(rows)
        return buf.getvalue().encode("utf-8", errors="backslashreplace")

    def write(self, segment: Segment) -> None:
        row = {"source": self.source} | segment.to_dict()
        line = (json.dumps(row) + "\n").encode("utf-8", errors="backslashreplace")
        table_row = self._csv_lines([csv_row(segment, self.labels, self.heads)])
        before = self.jsonl.size, self.csv.size
        try:
            self.jsonl.append(line)
            self.csv.append(table_row)
        except BaseException:  # Ctrl-C between or inside the two writes: both files get the row, or neither
            with contextlib.suppress(OSError):
                self._settle(before, line, table_row)
            raise
        self.count += 1

    def _settle(self, before: tuple[int, int], line: bytes, table_row: bytes) -> None:
        if self.jsonl.on_disk() == before[0] + len(line):
            self.jsonl.size = before[0] + len(line)
            if self.csv.on_disk() != before[1] + len(table_row):
                self.csv.cut(before[1])
                self.csv.append(table_row)
        else:
            self.jsonl.cut(before[0])
            self.csv.cut(before[1])

    def close(self) -> None:
        self.jsonl.close()
        self.csv.close()

    def __enter__(self) -> TimelineWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_segments(path: Path) -> Iterator[Segment]:
    """The segments of a `timeline.jsonl`, in order (a torn last line is not one)."""
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                return
            row = json.loads(line)
            row.pop("source", None)
            row["status"] = Status(row["status"])
            yield Segment(**row)
