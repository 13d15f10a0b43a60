"""One clip's prediction, and how the graph's logits become it.

Probabilities are computed here, from the graph's logits, with the manifest's temperatures:
`softmax(logits / prediction.temperature)` for the fused prediction and
`softmax(logits_<head> / prediction.head_temperatures[head])` (1.0 when not given) per head. A
recalibrated manifest therefore changes probabilities without touching the graph, and never the label.
A head whose modalities are all absent from a clip is reported as None, not as a confident number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from auxformer.common.metrics import softmax

from .contracts import MODALITIES, ClipFeatures, Status
from .manifest import Manifest


@dataclass
class Prediction:
    clip_id: str
    status: Status
    reason: str = ""
    label: str | None = None
    probabilities: dict[str, float] | None = None  # label -> probability of the fused prediction
    heads: dict[str, dict[str, float] | None] = field(default_factory=dict)  # head -> probabilities, None if absent
    present: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(MODALITIES, False))  # what the model saw
    source: str | None = None  # the file it came from, when it came from one
    timing: dict[str, float] = field(default_factory=dict)  # seconds: "extract", "infer" (its share of the batch)

    @property
    def ok(self) -> bool:
        return self.label is not None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        return out


def failed(clip_id: str, reason: str, source: str | None = None, status: Status = Status.FAILED) -> Prediction:
    return Prediction(clip_id, status, reason, source=source)


class Decoder:
    """Turns a batch of graph outputs into Predictions, following the manifest (whose PredictionSpec
    has checked the temperatures and which modalities each head reads)."""

    def __init__(self, manifest: Manifest):
        self.labels = list(manifest.labels)
        self.temperature = manifest.prediction.temperature
        self.head_temperatures = {h: manifest.prediction.head_temperature(h) for h in manifest.heads}
        self.head_modalities = manifest.prediction.head_modalities

    def decode(
        self, clips: list[ClipFeatures], outputs: Mapping[str, np.ndarray], present: list[dict[str, bool]]
    ) -> list[Prediction]:
        probs = softmax(np.asarray(outputs["logits"], np.float64) / self.temperature)
        head_probs = {
            h: softmax(np.asarray(outputs[f"logits_{h}"], np.float64) / t) for h, t in self.head_temperatures.items()
        }
        out = []
        for i, (clip, seen) in enumerate(zip(clips, present, strict=True)):
            heads = {
                h: self._named(p[i]) if any(seen[m] for m in self.head_modalities[h]) else None
                for h, p in head_probs.items()
            }
            out.append(
                Prediction(
                    clip.clip_id,
                    Status.of(seen["audio"], seen["video"]),
                    clip.reason,
                    label=self.labels[int(np.argmax(probs[i]))],
                    probabilities=self._named(probs[i]),
                    heads=heads,
                    present=dict(seen),
                    source=clip.info.get("source"),
                )
            )
        return out

    def _named(self, row: np.ndarray) -> dict[str, float]:
        return {label: float(p) for label, p in zip(self.labels, row, strict=True)}
