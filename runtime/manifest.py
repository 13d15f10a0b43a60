"""The model package manifest (docs/architecture.md, "Model package").

`model.onnx` carries it as JSON in its metadata (key `auxformer.manifest`); an engine `model.plan`
has it beside it as `model.plan.json`, with the TensorRT build recorded under `engine`. The runtime
reads it to know labels, I/O names and shapes, and refuses features that do not match it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .contracts import AUDIO_DIM, ClipFeatures
from .profile import Profile, ProfileError

SCHEMA = "auxformer-manifest/1"
METADATA_KEY = "auxformer.manifest"

INPUTS = ("audio", "audio_mask", "video", "video_mask")
OUTPUTS = ("logits", "probs")  # followed by one `logits_<head>` per head


class ManifestError(ValueError):
    """A package whose manifest is missing, malformed, or does not match the features given."""


@dataclass
class Manifest:
    labels: list[str]
    # {"audio_dim": 130, "audio_features": str, "video_dim": int, "video_embedder": str, "settings": {...}}
    features: dict[str, Any]
    model: dict[str, Any]  # {"name": str, "config": ModelConfig as dict, "parameters": int}
    heads: list[str]  # per-head outputs are `logits_<head>`
    # JSON {"batch": {"min", "opt", "max"}, "audio_len": {...}, "video_len": {...}}; None: not stated
    shapes: Profile | None = None
    prediction: dict[str, Any] = field(default_factory=lambda: {"rule": "mean_logits", "temperature": 1.0})
    normalization: dict[str, Any] = field(default_factory=dict)  # inside the graph; summary here
    training: dict[str, Any] = field(default_factory=dict)  # run folder, metrics, corpus
    precision: str = "fp32"
    engine: dict[str, Any] | None = None  # TensorRT version, GPU, compute capability, profile
    schema: str = SCHEMA

    @property
    def output_names(self) -> list[str]:
        return [*OUTPUTS, *(f"logits_{h}" for h in self.heads)]

    @property
    def video_dim(self) -> int:
        return int(self.features["video_dim"])

    @property
    def temperature(self) -> float:
        return float(self.prediction.get("temperature", 1.0))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str, source: str = "manifest") -> Manifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{source}: not JSON ({err})") from err
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ManifestError(f"{source}: not an auxformer manifest (schema {SCHEMA})")
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("labels", "features", "model", "heads") if k not in data]
        if missing:
            raise ManifestError(f"{source}: manifest lacks {missing}")
        values = {k: v for k, v in data.items() if k in known}
        values["shapes"] = _read_shapes(data.get("shapes"), source)
        return cls(**values)

    @classmethod
    def read_sidecar(cls, engine_path: str | Path) -> Manifest:
        """The manifest beside an engine: `model.plan` -> `model.plan.json`."""
        path = Path(f"{engine_path}.json")
        if not path.is_file():
            raise ManifestError(f"{engine_path} has no manifest beside it ({path.name})")
        return cls.from_json(path.read_text(), str(path))

    def embed(self, proto: Any) -> None:
        """Write this manifest into an ONNX ModelProto's metadata (replacing an earlier one)."""
        kept = [p for p in proto.metadata_props if p.key != METADATA_KEY]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, self.to_json()

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], source: str) -> Manifest:
        """From ONNX metadata as a dict (onnxruntime's `custom_metadata_map`, or a ModelProto's props)."""
        if METADATA_KEY not in metadata:
            raise ManifestError(f"{source} has no {METADATA_KEY} metadata: not exported by auxformer-export")
        return cls.from_json(metadata[METADATA_KEY], source)

    def check_features(self, clip: ClipFeatures, embedder: str | None = None) -> None:
        """Refuse features this model was not trained on, saying why."""
        if clip.audio.shape[1] != int(self.features.get("audio_dim", AUDIO_DIM)):
            raise ManifestError(
                f"{clip.clip_id}: audio has {clip.audio.shape[1]} dims, the model expects "
                f"{self.features.get('audio_dim', AUDIO_DIM)}"
            )
        if clip.video_dim != self.video_dim:
            raise ManifestError(
                f"{clip.clip_id}: video features have {clip.video_dim} dims, the model expects "
                f"{self.video_dim} ({self.features.get('video_embedder', '?')} embedder)"
            )
        wanted = self.features.get("video_embedder")
        if embedder is not None and wanted is not None and embedder != wanted:
            raise ManifestError(
                f"features come from the {embedder!r} video embedder, the model was trained "
                f"on {wanted!r}: extract with the model's embedder"
            )


def _read_shapes(data: Any, source: str) -> Profile | None:
    """The manifest's `shapes` as a Profile; absent or empty (`{}`, older files): None."""
    if data is None or data == {}:
        return None
    try:
        return Profile.from_dict(data)
    except (ProfileError, TypeError) as err:
        raise ManifestError(f"{source}: malformed shapes ({err})") from err
