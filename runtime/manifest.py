"""The model package manifest (docs/architecture.md, "Model package").

`model.onnx` carries it as JSON in its metadata (key `auxformer.manifest`); an engine `model.plan`
has it beside it as `model.plan.json`, with the TensorRT build recorded under `engine`. The runtime
reads it to know labels, I/O names and shapes, and refuses features that do not match it.

Its parts are typed (FeatureSpec, PredictionSpec, ModelRecord, TrainingRecord) and checked when read:
a wrong type, a missing or unknown key, or a value out of range raises ManifestError naming the field.
`version` 2 is what this code writes; version 1 (the first release: no `version` key, free-form parts)
is upgraded on reading when it records which modalities each head reads, and refused otherwise.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from .contracts import AUDIO_DIM, MODALITIES, ClipFeatures
from .contracts import DYNAMIC_AXES as DYNAMIC_AXES  # the graph's inputs, re-exported for the export and runners
from .contracts import INPUTS as INPUTS
from .profile import Profile, ProfileError

SCHEMA = "auxformer-manifest/1"
VERSION = 2  # what this code writes; version 1 (no `version` key) is read through `_upgrade_v1`
READABLE_VERSIONS = (1, VERSION)
METADATA_KEY = "auxformer.manifest"

OUTPUTS = ("logits", "probs")  # followed by one `logits_<head>` per head
PREDICTION_RULES = ("mean_logits", "mean_probs", "main")  # how the graph fuses the heads into `logits`
PRECISIONS = ("fp32", "fp16", "int8")

T = TypeVar("T")


class ManifestError(ValueError):
    """A package whose manifest is missing, malformed, or does not match the features given."""


@dataclass(frozen=True)
class FeatureSpec:
    """The features the model was trained on."""

    audio_dim: int
    video_dim: int
    video_embedder: str | None = None  # "expression", "pixels", "vggface", or the name your own extractor gave
    # short sha256 of the shipped weights the embedder ran (FeatureSettings.video_weights); None: not recorded
    video_weights: str | None = None
    audio_features: str | None = None  # what the audio dims are (ComParE LLDs)
    # the media front end's FeatureSettings.to_dict(); None when the features were not made by it
    settings: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)  # the training corpus's other metadata

    def __post_init__(self) -> None:
        # as JSON has them (tuples are lists), so a manifest read back equals the one written
        for name in ("settings", "provenance"):
            try:
                object.__setattr__(self, name, json.loads(json.dumps(getattr(self, name))))
            except (TypeError, ValueError) as err:
                raise ManifestError(f"features.{name} must be JSON values ({err})") from err
        if self.audio_dim != AUDIO_DIM:
            raise ManifestError(f"features.audio_dim is {self.audio_dim}, the feature contract's audio has {AUDIO_DIM}")
        if self.video_dim < 1:
            raise ManifestError(f"features.video_dim must be >= 1, got {self.video_dim}")


@dataclass(frozen=True)
class PredictionSpec:
    """How logits become probabilities, and which heads count for a clip."""

    rule: str  # how the graph fused the heads into `logits` (one of PREDICTION_RULES)
    head_modalities: dict[str, tuple[str, ...]]  # per head, in output order: the modalities it reads
    temperature: float = 1.0  # probs = softmax(logits / temperature)
    head_temperatures: dict[str, float] = field(default_factory=dict)  # per head; 1.0 for a head not named

    def __post_init__(self) -> None:
        object.__setattr__(self, "head_modalities", {h: tuple(m) for h, m in self.head_modalities.items()})
        if self.rule not in PREDICTION_RULES:
            raise ManifestError(f"prediction.rule must be one of {', '.join(PREDICTION_RULES)}, got {self.rule!r}")
        if not self.head_modalities:
            raise ManifestError("prediction.head_modalities names no head")
        for head, modalities in self.head_modalities.items():
            if not modalities or set(modalities) - set(MODALITIES) or len(set(modalities)) != len(modalities):
                raise ManifestError(
                    f"prediction.head_modalities.{head} must name distinct modalities among "
                    f"{', '.join(MODALITIES)}, got {list(modalities)}"
                )
        temperatures = {"temperature": self.temperature}
        temperatures |= {f"head_temperatures.{h}": t for h, t in self.head_temperatures.items()}
        for name, value in temperatures.items():
            if not (math.isfinite(value) and value > 0):
                raise ManifestError(f"prediction.{name} must be a finite number > 0, got {value}")
        unknown = sorted(set(self.head_temperatures) - set(self.head_modalities))
        if unknown:
            raise ManifestError(f"prediction.head_temperatures names heads the model lacks: {unknown}")

    def head_temperature(self, head: str) -> float:
        return self.head_temperatures.get(head, 1.0)


@dataclass(frozen=True)
class ModelRecord:
    """Which model this is (for people and logs; the runtime reads the graph, not this)."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)  # the ModelConfig it was built with
    parameters: int | None = None


@dataclass(frozen=True)
class TrainingRecord:
    """Where the weights came from (provenance: nothing at run time depends on it)."""

    run: str | None = None  # the run folder
    checkpoint: str | None = None
    corpus: str | None = None  # the feature corpus it was trained on
    epoch: int | None = None  # of the checkpoint
    dev_loss: float | None = None
    train_config: dict[str, Any] = field(default_factory=dict)
    length_stats: dict[str, Any] = field(default_factory=dict)  # clip lengths of the training partition
    test: dict[str, float] = field(default_factory=dict)  # test-partition metrics (macro_f1, micro_f1)
    int8: dict[str, Any] | None = None  # how an int8 model was quantised


@dataclass
class Manifest:
    labels: list[str]
    features: FeatureSpec
    model: ModelRecord
    heads: list[str]  # per-head outputs are `logits_<head>`
    prediction: PredictionSpec
    # JSON {"batch": {"min", "opt", "max"}, "audio_len": {...}, "video_len": {...}}; None: not stated
    shapes: Profile | None = None
    normalization: dict[str, Any] = field(default_factory=dict)  # inside the graph; summary here
    training: TrainingRecord = field(default_factory=TrainingRecord)
    precision: str = "fp32"
    engine: dict[str, Any] | None = None  # TensorRT version, GPU, compute capability, profile
    schema: str = SCHEMA
    version: int = VERSION

    def __post_init__(self) -> None:
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise ManifestError(f"labels must be distinct and at least one, got {self.labels}")
        if list(self.heads) != list(self.prediction.head_modalities):
            raise ManifestError(
                f"prediction.head_modalities names heads {list(self.prediction.head_modalities)}, "
                f"the model's heads are {self.heads}"
            )
        if self.precision not in PRECISIONS:
            raise ManifestError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if (self.schema, self.version) != (SCHEMA, VERSION):
            raise ManifestError(f"a manifest in memory is {SCHEMA} version {VERSION}, got {self.schema} {self.version}")

    @property
    def output_names(self) -> list[str]:
        return [*OUTPUTS, *(f"logits_{h}" for h in self.heads)]

    @property
    def video_dim(self) -> int:
        return self.features.video_dim

    @property
    def temperature(self) -> float:
        return self.prediction.temperature

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str, source: str = "manifest") -> Manifest:
        """Parse and validate; a version-1 manifest is upgraded. Raises ManifestError naming the field."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{source}: not JSON ({err})") from err
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ManifestError(f"{source}: not an auxformer manifest (schema {SCHEMA})")
        version = data.get("version", 1)  # the first release wrote no version
        if type(version) is not int or version not in READABLE_VERSIONS:
            raise ManifestError(
                f"{source}: manifest version {version!r}, this auxformer reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}: use the auxformer release that exported it, or re-export"
            )
        try:
            return _parse(cls, _upgrade_v1(data) if version == 1 else data, "manifest")
        except ManifestError as err:
            raise ManifestError(f"{source}: {err}") from None

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

    def check_features(self, clip: ClipFeatures) -> None:
        """Refuse features this model was not trained on, saying why (the audio dims are the feature
        contract's, which ClipFeatures enforces)."""
        if clip.video_dim != self.video_dim:
            raise ManifestError(
                f"{clip.clip_id}: video features have {clip.video_dim} dims, the model expects "
                f"{self.video_dim} ({self.features.video_embedder or 'unnamed'} embedder)"
            )


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 manifest (the first release: free-form parts) as version 2. Refused when its prediction
    does not record which modalities each head reads: guessing that from the model's name could
    report a head for a modality the clip lacks, so such a model is re-exported instead."""
    prediction = data.get("prediction")
    if not isinstance(prediction, dict) or not prediction.get("head_modalities"):
        raise ManifestError(
            "a version-1 manifest without prediction.head_modalities (which modalities each head reads): "
            "re-export the model with this auxformer (auxformer-export RUN_OR_CHECKPOINT)"
        )
    for part in ("features", "model", "training"):
        if not isinstance(data.get(part) or {}, dict):
            raise ManifestError(f"manifest.{part} must be an object, got {_kind(data[part])}")
    features = dict(data.get("features") or {})
    if not isinstance(features.get("settings") or {}, dict):
        raise ManifestError(f"manifest.features.settings must be an object, got {_kind(features['settings'])}")
    # version 1 kept the corpus's metadata under features.settings, the front end's settings inside it
    # as feature_settings (or, written by hand, beside it)
    old = dict(features.pop("settings", None) or {})
    settings = features.pop("feature_settings", None) or old.pop("feature_settings", None)
    for repeated in ("audio_dim", "video_dim", "face_detector"):
        old.pop(repeated, None)
    training = {k: v for k, v in (data.get("training") or {}).items() if v is not None}
    model = {k: v for k, v in (data.get("model") or {}).items() if v is not None}
    return {
        **data,
        "features": {**features, "settings": settings, "provenance": old},
        "model": model,
        "training": training,
        "shapes": data.get("shapes") or None,  # version 1 wrote {} for "not stated"
        "version": VERSION,
    }


def _parse(cls: type[T], data: Any, where: str) -> T:
    """The dataclass `cls` from a JSON object, every field checked against its annotation."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where} must be an object, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ManifestError(f"{where} has unknown fields {unknown}")
    required = [n for n, f in known.items() if f.default is MISSING and f.default_factory is MISSING]
    missing = [f"{where}.{n}" for n in required if n not in data]
    if missing:
        raise ManifestError(f"missing {', '.join(missing)}")
    return cls(**{name: _value(value, hints[name], f"{where}.{name}") for name, value in data.items()})


def _value(value: Any, hint: Any, where: str) -> Any:
    """`value` checked against the annotation `hint` (the types manifests use), as that type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(value, inner, where)
    if hint is Profile:
        if value == {}:  # "not stated", as the first release wrote it
            return None
        try:
            return Profile.from_dict(value)
        except ProfileError as err:
            raise ManifestError(f"malformed shapes ({where}: {err})") from None
    if is_dataclass(hint):
        return _parse(hint, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ManifestError(f"{where} must be an object, got {_kind(value)}")
        return {k: _value(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ManifestError(f"{where} must be a list, got {_kind(value)}")
        return origin(_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if hint not in _SCALARS:
        raise TypeError(f"{where}: a manifest field of type {hint!r} has no reader")
    if type(value) not in _SCALARS[hint]:  # not isinstance: True is an int to Python, not to a manifest
        raise ManifestError(f"{where} must be {hint.__name__}, got {_kind(value)}")
    return hint(value)


_SCALARS = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}  # JSON types each reads


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]
