"""Predictions on disk (`predictions.jsonl`, `predictions.csv`, one row per input file) and the run's
summary table.

`predictions.jsonl` is the run's log: each batch's rows are appended in one write and fsynced before
the run goes on (`PredictionLog`), so a crash, a full disk or kill -9 keeps every row written before it,
byte for byte. At worst a kill during a write leaves one torn last line, which `read_rows` ignores and
`--resume` cuts off before appending. `predictions.csv` is built from the log's rows and replaced
atomically when a run ends (also when it is stopped by a signal), so a reader sees a complete table or
none, never a torn one."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from auxformer.common import atomic

from .prediction import Prediction

JSONL, CSV = "predictions.jsonl", "predictions.csv"
_NUMBER = re.compile(r"\d+(\.\d+)?")


# what every row of the log has (json_row): a line without them is not this program's
ROW_KEYS = frozenset(("path", "clip_id", "status", "reason", "label", "probabilities", "heads", "present", "cached"))


class OutputError(Exception):
    """The output folder cannot be used, or writing to it failed; the message says why, in one line."""


def row_path(path: str | os.PathLike[str]) -> str:
    """A file's key in the log: absolute, so `--resume` and the table's input order know a file however
    its path was spelled (relative, ./, another working directory)."""
    return os.path.abspath(path)


def json_row(path: Path, p: Prediction, cached: bool) -> dict[str, Any]:
    return {
        "path": row_path(path),
        "clip_id": p.clip_id,
        "status": p.status.value,
        "reason": p.reason,
        "label": p.label,
        "probabilities": p.probabilities,
        "heads": p.heads,
        "present": p.present,
        "cached": cached,
        "timing": {k: round(v, 6) for k, v in p.timing.items()},
    }


def csv_row(row: dict[str, Any], labels: list[str], heads: list[str]) -> dict[str, Any]:
    """A `json_row` as a flat table row."""
    probabilities = row["probabilities"] or {}
    out: dict[str, Any] = {
        "path": row["path"],
        "clip_id": row["clip_id"],
        "status": row["status"],
        "label": row["label"] or "",
    }
    for label in labels:
        out[f"p_{label}"] = f"{probabilities[label]:.6f}" if label in probabilities else ""
    for head in heads:  # each head's own answer; empty where its modalities are absent
        probs = row["heads"].get(head)
        out[f"label_{head}"] = max(probs, key=probs.__getitem__) if probs else ""
    out.update(
        has_audio=int(row["present"]["audio"]),
        has_video=int(row["present"]["video"]),
        cached=int(row["cached"]),
        extract_s=f"{row['timing'].get('extract', 0.0):.4f}",
        infer_s=f"{row['timing'].get('infer', 0.0):.4f}",
        reason=row["reason"],
    )
    return out


def read_rows(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The rows of a `predictions.jsonl` and the length in bytes of its complete lines (a torn last line,
    left by a kill during a write, is not a row). A complete line that is not a row means the file is
    not this program's log: refused rather than appended to."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    complete = data.rfind(b"\n") + 1
    rows = []
    for number, line in enumerate(data[:complete].splitlines(), 1):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("path"), str) or not row.keys() >= ROW_KEYS:
            raise OutputError(f"line {number} of {path} is not a prediction row: choose a new --out")
        rows.append(row)
    return rows, complete


class PredictionLog:
    """`predictions.jsonl` opened for appending. `append` writes a batch's rows in one go and fsyncs
    them; a write that fails (a full disk) or is cut short (a signal) is cut back off when the log is
    closed, so the file always ends with a complete row."""

    def __init__(self, path: Path, rows: list[dict[str, Any]], size: int):
        """`rows`, `size`: what `read_rows` found in the file (kept: a resumed run's earlier rows)."""
        self.path = path
        self.rows = list(rows)  # every complete row in the file, this run's appended ones included
        self._size = size
        self.earlier = len(rows)
        self.done = {row["path"] for row in rows}  # files that already have a row
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            os.ftruncate(self._fd, self._size)  # a torn last line from a killed run
        except OSError as err:
            raise OutputError(f"cannot write {path}: {err.strerror}") from err
        self.written = 0  # rows appended by this run

    def append(self, rows: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")
        try:
            atomic.append_durably(self._fd, data)
        except OSError as err:
            self._cut()
            raise OutputError(
                f"writing {self.path} failed: {err.strerror}; the {self.earlier + self.written} rows written "
                "before are kept: make room and rerun with --resume to finish"
            ) from err
        self._size += len(data)
        self.written += len(rows)
        self.rows += rows

    def _cut(self) -> None:
        try:
            if os.fstat(self._fd).st_size > self._size:
                os.ftruncate(self._fd, self._size)
                os.fsync(self._fd)
        except OSError:
            pass  # read_rows ignores a torn last line, and --resume cuts it off

    def close(self) -> None:
        if self._fd >= 0:
            self._cut()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_csv(out_dir: Path, rows: list[dict[str, Any]], labels: list[str], heads: list[str]) -> Path:
    """`predictions.csv` in `out_dir` from `json_row`s, in the order given, replaced atomically."""
    table = [csv_row(row, labels, heads) for row in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(table[0]) if table else ["path"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    try:
        # a file name that is not UTF-8 comes back from the OS with surrogates: written as \udcXX escapes,
        # as the JSON log writes it, never a crash after every clip was predicted
        atomic.write_bytes(out_dir / CSV, buf.getvalue().encode("utf-8", errors="backslashreplace"))
    except OSError as err:
        raise OutputError(f"writing {out_dir / CSV} failed: {err.strerror} (the rows are in {JSONL})") from err
    return out_dir / CSV


def reason_kind(reason: str) -> str:
    """Failure reasons grouped: numbers and paths differ from file to file, the cause does not."""
    first = reason.split(";")[0].strip()
    return _NUMBER.sub("N", first)[:90] or "unknown"


@dataclass
class RunSummary:
    clips: int
    statuses: dict[str, int]
    failures: dict[str, int]  # reason kind -> clips, for clips without a prediction
    seconds: float
    stages: dict[str, float]
    backend: str
    cached: int = 0
    files: list[Path] = field(default_factory=list)

    resumed: int = 0  # rows kept from an earlier run (--resume)

    @classmethod
    def build(cls, rows: list[dict[str, Any]], **kwargs: Any) -> RunSummary:
        """From `json_row`s: every row of the output, an earlier run's included."""
        statuses = Counter(row["status"] for row in rows)
        failures = Counter(reason_kind(row["reason"]) for row in rows if row["label"] is None)
        return cls(len(rows), dict(statuses), dict(failures.most_common()), **kwargs)

    @property
    def predicted(self) -> int:
        return self.clips - sum(self.failures.values())

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else 0.0

    def print(self, console: Console) -> None:
        table = Table(title="auxformer-infer", show_header=False, title_justify="left")
        table.add_column("what", style="bold")
        table.add_column("value", justify="right")
        table.add_row("clips", str(self.clips))
        table.add_row("predicted", str(self.predicted))
        for status, n in sorted(self.statuses.items()):
            table.add_row(f"  status {status}", str(n))
        if self.resumed:
            table.add_row("rows from an earlier run", str(self.resumed))
        table.add_row("features from cache", str(self.cached))
        table.add_row("backend", self.backend)
        table.add_row("wall time", f"{self.seconds:.2f} s")
        table.add_row("clips/s", f"{self.clips_per_second:.2f}")
        for stage, seconds in self.stages.items():
            table.add_row(f"  {stage}", f"{seconds:.2f} s")
        console.print(table)
        if self.failures:
            failures = Table(title="no prediction, by reason", title_justify="left")
            failures.add_column("clips", justify="right")
            failures.add_column("reason")
            for reason, n in self.failures.items():
                failures.add_row(str(n), reason)
            console.print(failures)
        for path in self.files:
            console.print(f"wrote {path}")
