"""Predictions on disk (`predictions.jsonl`, `predictions.csv`, one row per input file) and the run's
summary table. Both files are written atomically, so a reader never sees half a run."""

from __future__ import annotations

import csv
import io
import json
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


def json_row(path: Path, p: Prediction, cached: bool) -> dict[str, Any]:
    return {
        "path": str(path),
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


def csv_row(path: Path, p: Prediction, cached: bool, labels: list[str], heads: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"path": str(path), "clip_id": p.clip_id, "status": p.status.value, "label": p.label or ""}
    for label in labels:
        row[f"p_{label}"] = f"{p.probabilities[label]:.6f}" if p.probabilities else ""
    for head in heads:  # each head's own answer; empty where its modalities are absent
        probs = p.heads.get(head)
        row[f"label_{head}"] = max(probs, key=probs.__getitem__) if probs else ""
    row.update(
        has_audio=int(p.present["audio"]),
        has_video=int(p.present["video"]),
        cached=int(cached),
        extract_s=f"{p.timing.get('extract', 0.0):.4f}",
        infer_s=f"{p.timing.get('infer', 0.0):.4f}",
        reason=p.reason,
    )
    return row


def write_predictions(
    out_dir: Path, items: list[tuple[Path, Prediction, bool]], labels: list[str], heads: list[str]
) -> list[Path]:
    """`predictions.jsonl` and `predictions.csv` in `out_dir`, rows in the order given."""
    lines = [json.dumps(json_row(path, p, cached)) for path, p, cached in items]
    atomic.write_text(out_dir / JSONL, "".join(line + "\n" for line in lines))
    rows = [csv_row(path, p, cached, labels, heads) for path, p, cached in items]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["path"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(out_dir / CSV, buf.getvalue())
    return [out_dir / JSONL, out_dir / CSV]


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

    @classmethod
    def build(cls, predictions: list[Prediction], **kwargs: Any) -> RunSummary:
        statuses = Counter(p.status.value for p in predictions)
        failures = Counter(reason_kind(p.reason) for p in predictions if not p.ok)
        return cls(len(predictions), dict(statuses), dict(failures.most_common()), **kwargs)

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
