"""A run's results, typed: one `Evaluation` per partition and test condition, and `RunMetrics`, which
is `metrics.json` (its keys are what the README, the protocol and export read)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.calibration.temperature import CalibrationReport
from auxformer.common import atomic

METRICS_FILE = "metrics.json"
# test condition -> modality removed from every test clip
CONDITIONS: dict[str, str | None] = {"full": None, "audio_only": "video", "video_only": "audio"}
CONDITION_NAMES = {"full": "audio + video", "audio_only": "audio only", "video_only": "video only"}


def condition_key(condition: str) -> str:
    """The metrics.json key of a test condition."""
    return "test" if condition == "full" else f"test_{condition}"


@dataclass
class HeadScores:
    macro_f1: float
    micro_f1: float


@dataclass
class Outputs:
    """What the model predicted, kept in memory for temperature scaling (never written to metrics.json)."""

    logits: np.ndarray  # the fused prediction
    head_logits: dict[str, np.ndarray]
    targets: np.ndarray


@dataclass
class Evaluation:
    """Scores of the fused prediction on one set of clips, with each head's."""

    macro_f1: float
    micro_f1: float
    per_class_f1: dict[str, float]
    confusion: list[list[int]]  # rows: true class, columns: predicted
    n: int
    loss: float
    heads: dict[str, HeadScores] = field(default_factory=dict)
    outputs: Outputs | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "outputs"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        heads = {name: HeadScores(**h) for name, h in data.get("heads", {}).items()}
        keys = ("macro_f1", "micro_f1", "per_class_f1", "confusion", "n", "loss")
        return cls(**{k: data[k] for k in keys}, heads=heads)


@dataclass
class RunMetrics:
    model: str
    training: str
    labels: list[str]
    best_epoch: int | None
    epochs: int
    parameters: int
    history: list[dict[str, float]]
    # "dev", and condition_key(c) for each test condition
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    calibration: CalibrationReport | None = None

    @property
    def test(self) -> Evaluation:
        return self.evaluations["test"]

    def condition(self, condition: str) -> Evaluation:
        return self.evaluations[condition_key(condition)]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "training": self.training,
            "labels": self.labels,
            "best_epoch": self.best_epoch,
            "epochs": self.epochs,
            "parameters": self.parameters,
            "history": self.history,
            **{key: e.to_dict() for key, e in self.evaluations.items()},
        }
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunMetrics:
        keys = ["dev", *(condition_key(c) for c in CONDITIONS)]
        calibration = data.get("calibration")
        return cls(
            **{k: data[k] for k in ("model", "training", "labels", "best_epoch", "epochs", "parameters", "history")},
            evaluations={k: Evaluation.from_dict(data[k]) for k in keys if k in data},
            calibration=CalibrationReport(**calibration) if calibration else None,
        )

    def save(self, run_dir: str | Path) -> None:
        atomic.write_json(Path(run_dir) / METRICS_FILE, self.to_dict())

    @classmethod
    def load(cls, run_dir: str | Path) -> RunMetrics:
        return cls.from_dict(json.loads((Path(run_dir) / METRICS_FILE).read_text()))
