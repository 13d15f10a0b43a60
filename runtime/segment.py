"""One window of a long recording or live source and what the model made of it.

`Session.stream` yields these lazily; the timeline files (jsonl, csv), the timeline plot and the
overlay video all read them, so this is the one shape they share.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .contracts import MODALITIES, Status
from .prediction import Prediction


@dataclass
class Segment:
    start: float  # seconds from the source's start
    end: float
    status: Status
    reason: str = ""
    label: str | None = None
    probabilities: dict[str, float] | None = None  # label -> fused probability; None when not predicted
    heads: dict[str, dict[str, float] | None] = field(default_factory=dict)  # head -> probabilities, None if absent
    present: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(MODALITIES, False))  # what the model saw

    @property
    def ok(self) -> bool:
        return self.label is not None

    @classmethod
    def of(cls, prediction: Prediction, start: float, end: float) -> Segment:
        p = prediction
        return cls(start, end, p.status, p.reason, p.label, p.probabilities, dict(p.heads), dict(p.present))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        return out
