"""The model manifest: typed parts validated on load (naming the field at fault), its version, the
upgrade of version-1 manifests, and what the runtime reads from it (head modalities, feature checks)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from auxformer.runtime.clip_inputs import settings_for
from auxformer.runtime.contracts import ClipFeatures, Status
from auxformer.runtime.features import FeatureSettings
from auxformer.runtime.manifest import (
    VERSION,
    FeatureSpec,
    Manifest,
    ManifestError,
    ModelRecord,
    PredictionSpec,
    TrainingRecord,
)
from auxformer.runtime.prediction import Decoder
from auxformer.runtime.profile import Profile, Range

LABELS = ["anger", "happy", "sad"]
HEADS = {"av": ("audio", "video"), "audio": ("audio",), "video": ("video",)}
SETTINGS = FeatureSettings(video_embedder="pixels", pixels_size=4)


def manifest(**changes) -> Manifest:
    parts = dict(
        labels=LABELS,
        features=FeatureSpec(
            audio_dim=130,
            video_dim=16,
            video_embedder="pixels",
            audio_features="ComParE_2016 LLDs",
            settings=SETTINGS.to_dict(),
            provenance={"source": {"name": "crema-d", "clips": 7442}},
        ),
        model=ModelRecord("auxformer", {"num_layers": 1}, 1234),
        heads=list(HEADS),
        prediction=PredictionSpec("mean_logits", HEADS, temperature=1.5, head_temperatures={"audio": 0.8}),
        shapes=Profile(Range(1, 8, 32), Range(1, 100, 320), Range(1, 30, 96)),
        normalization={"in_graph": True},
        training=TrainingRecord(run="runs/a", epoch=3, dev_loss=0.9, test={"macro_f1": 0.5}),
        precision="fp16",
        engine={"tensorrt_version": "10.3.0"},
    )
    return Manifest(**{**parts, **changes})


def as_dict(m: Manifest) -> dict:
    return json.loads(m.to_json())


def test_round_trip_through_json_is_equal():
    original = manifest()
    again = Manifest.from_json(original.to_json())
    assert again == original and again.version == VERSION
    assert again.prediction.head_modalities["av"] == ("audio", "video")  # tuples again, not JSON lists
    assert again.prediction.head_temperature("audio") == 0.8 and again.prediction.head_temperature("video") == 1.0


@pytest.mark.parametrize("version", [3, 0, "2", True, None])
def test_a_version_this_code_does_not_know_is_refused(version):
    data = as_dict(manifest())
    data["version"] = version
    with pytest.raises(
        ManifestError, match=rf"model.onnx: manifest version {version!r}, this auxformer reads versions 1, 2"
    ):
        Manifest.from_json(json.dumps(data), "model.onnx")


def _set(data: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for key in parents:
        data = data[key]
    if value is KeyError:
        del data[last]
    else:
        data[last] = value


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("prediction.temperature", 0, "prediction.temperature must be a finite number > 0, got 0"),
        ("prediction.head_temperatures", {"audio": -1.0}, r"prediction.head_temperatures.audio must be .* > 0"),
        ("prediction.head_temperatures", {"face": 2.0}, r"head_temperatures names heads the model lacks: \['face'\]"),
        ("prediction.rule", "vote", "prediction.rule must be one of mean_logits, mean_probs, main, got 'vote'"),
        ("prediction.head_modalities.audio", ["face"], "prediction.head_modalities.audio must name distinct"),
        ("prediction.head_modalities.av", [], "prediction.head_modalities.av must name distinct"),
        (
            "prediction.head_modalities",
            {"av": ["audio", "video"], "audio": ["audio"]},
            r"names heads \['av', 'audio'\]",
        ),
        ("prediction.head_modalities", KeyError, "missing manifest.prediction.head_modalities"),
        ("prediction.temperature", "hot", "manifest.prediction.temperature must be float, got str 'hot'"),
        ("features.video_dim", "16", "manifest.features.video_dim must be int, got str '16'"),
        ("features.video_dim", 0, "features.video_dim must be >= 1"),
        ("features.audio_dim", 88, "features.audio_dim is 88, the feature contract's audio has 130"),
        ("features.video_dim", KeyError, "missing manifest.features.video_dim"),
        ("features.settings", "haar", "manifest.features.settings must be an object"),
        ("features.colour", "red", r"manifest.features has unknown fields \['colour'\]"),
        ("features", [130, 16], "manifest.features must be an object, got list"),
        ("labels", "anger", "manifest.labels must be a list, got str"),
        ("labels", ["anger", "anger"], "labels must be distinct"),
        ("heads", ["av", 2, "video"], r"manifest.heads\[1\] must be str, got int 2"),
        ("model.name", KeyError, "missing manifest.model.name"),
        ("training.epoch", 1.5, "manifest.training.epoch must be int, got float 1.5"),
        ("training.run", True, "manifest.training.run must be str, got bool True"),
        ("precision", "fp8", "precision must be one of fp32, fp16, int8, got 'fp8'"),
    ],
)
def test_a_malformed_part_is_refused_naming_the_field(path, value, message):
    data = as_dict(manifest())
    _set(data, path, value)
    with pytest.raises(ManifestError, match=rf"^model.plan.json: .*{message}"):
        Manifest.from_json(json.dumps(data), "model.plan.json")


def test_what_is_not_a_manifest_is_refused():
    with pytest.raises(ManifestError, match="not JSON"):
        Manifest.from_json("{", "m")
    with pytest.raises(ManifestError, match="not an auxformer manifest"):
        Manifest.from_json(json.dumps({**as_dict(manifest()), "schema": "other/1"}), "m")


def version_1(**prediction) -> dict:
    """A manifest as the first release wrote it: no version, free-form parts, the corpus's metadata
    (front-end settings included) under features.settings."""
    return {
        "labels": LABELS,
        "features": {
            "audio_dim": 130,
            "video_dim": 16,
            "audio_features": "ComParE_2016 LLDs",
            "video_embedder": "pixels",
            "settings": {
                "audio_dim": 130,
                "video_dim": 16,
                "face_detector": "haar",
                "feature_settings": SETTINGS.to_dict(),
                "source": {"name": "crema-d"},
                "source_notes": "two clips dropped",
            },
        },
        "model": {"name": "auxformer", "config": {"num_layers": 1}, "parameters": 1234},
        "heads": list(HEADS),
        "shapes": {},
        "prediction": {"rule": "mean_logits", "temperature": 1.2, "head_temperatures": {}, **prediction},
        "normalization": {"in_graph": True},
        "training": {"run": "runs/a", "epoch": 3, "dev_loss": 0.9, "train_config": None, "length_stats": None},
        "precision": "fp32",
        "engine": None,
        "schema": "auxformer-manifest/1",
    }


def test_a_version_1_manifest_that_records_head_modalities_is_upgraded():
    old = version_1(head_modalities={h: list(m) for h, m in HEADS.items()})
    upgraded = Manifest.from_json(json.dumps(old), "exports/demo/model.onnx")
    assert upgraded.version == VERSION
    assert FeatureSettings.from_dict(upgraded.features.settings) == SETTINGS
    assert upgraded.features.provenance == {"source": {"name": "crema-d"}, "source_notes": "two clips dropped"}
    assert upgraded.prediction == PredictionSpec("mean_logits", HEADS, temperature=1.2)
    assert upgraded.training == TrainingRecord(run="runs/a", epoch=3, dev_loss=0.9)
    assert settings_for(upgraded) == SETTINGS
    # written again, it is a version-2 manifest that reads back the same
    assert json.loads(upgraded.to_json())["version"] == VERSION
    assert Manifest.from_json(upgraded.to_json()) == upgraded


def test_a_version_1_manifest_without_head_modalities_asks_for_a_re_export():
    with pytest.raises(
        ManifestError, match=r"model.onnx: a version-1 manifest without prediction.head_modalities.*re-export"
    ):
        Manifest.from_json(json.dumps(version_1()), "model.onnx")


def _clip(video_dim: int = 16, audio: bool = True, video: bool = True) -> ClipFeatures:
    return ClipFeatures(
        "c",
        np.ones((5, 130), np.float32),
        np.full(5, audio),
        np.ones((3, video_dim), np.float32),
        np.full(3, video),
    )


def test_check_features_refuses_video_of_other_dims():
    m = manifest()
    m.check_features(_clip())
    with pytest.raises(
        ManifestError, match="c: video features have 8 dims, the model expects 16 \\(pixels embedder\\)"
    ):
        m.check_features(_clip(video_dim=8))


def test_front_end_settings_come_from_the_manifest_and_are_checked():
    assert settings_for(manifest()) == SETTINGS
    with pytest.raises(ManifestError, match="makes 64-dim video features, the model expects 16"):
        settings_for(manifest(), FeatureSettings(video_embedder="pixels", pixels_size=8))
    unrecorded = manifest(features=FeatureSpec(audio_dim=130, video_dim=16, video_embedder="demo"))
    with pytest.raises(ManifestError, match="were not made by the media front end"):
        settings_for(unrecorded)
    # given explicitly, settings that make the model's features are fine even when none are recorded
    other = manifest(features=FeatureSpec(audio_dim=130, video_dim=16))
    assert settings_for(other, SETTINGS) == SETTINGS


def test_the_heads_a_clip_gets_follow_the_manifests_head_modalities():
    """A head is reported only when a modality it reads is present: which ones is the manifest's word,
    not a guess from head or model names."""
    rng = np.random.default_rng(0)
    outputs = {name: rng.standard_normal((1, 3)) for name in ("logits", "probs", *(f"logits_{h}" for h in HEADS))}
    audio_only = [{"audio": True, "video": False}]
    usual = Decoder(manifest()).decode([_clip(video=False)], outputs, audio_only)[0]
    assert usual.heads["audio"] is not None and usual.heads["video"] is None and usual.heads["av"] is not None
    swapped = {"av": ("audio", "video"), "audio": ("video",), "video": ("audio",)}
    prediction = PredictionSpec("mean_logits", swapped)
    other = Decoder(manifest(prediction=prediction)).decode([_clip(video=False)], outputs, audio_only)[0]
    assert other.heads["audio"] is None and other.heads["video"] is not None
    assert other.status is Status.NO_FACE and other.label == usual.label


@pytest.mark.parametrize(
    ("part", "value"),
    [("features", "x"), ("features", [1]), ("training", [1]), ("model", "auxformer"), ("settings", "oops")],
)
def test_a_malformed_version_1_manifest_is_refused_naming_the_part(part, value):
    data = version_1(head_modalities={h: list(m) for h, m in HEADS.items()})
    if part == "settings":
        data["features"]["settings"] = value
    else:
        data[part] = value
    with pytest.raises(ManifestError, match=rf"model.onnx: manifest\.(features\.)?{part} must be an object"):
        Manifest.from_json(json.dumps(data), "model.onnx")


def test_a_model_trained_on_other_expression_weights_is_refused():
    """The feature spec records the shipped weights' digest; a model trained on features of other
    weights (an older or newer expression.onnx) is refused, not fed features it never saw."""
    settings = FeatureSettings()  # the default: the expression embedder
    spec = settings.feature_spec()
    assert spec["video_embedder"] == "expression" and len(spec["video_weights"]) == 16

    def trained_on(weights: str | None) -> Manifest:
        features = FeatureSpec(
            audio_dim=130,
            video_dim=128,
            video_embedder="expression",
            video_weights=weights,
            settings=settings.to_dict(),
        )
        return manifest(features=features)

    assert settings_for(trained_on(spec["video_weights"])) == settings
    assert settings_for(trained_on(None)) == settings  # a manifest that records no digest is not checked on it
    with pytest.raises(
        ManifestError, match=r"runs weights \w+, the model was trained on features of weights 0123456789abcdef:"
    ):
        settings_for(trained_on("0123456789abcdef"))
    with pytest.raises(ManifestError, match="runs weights"):
        settings_for(trained_on("0123456789abcdef"), FeatureSettings())
    # and the digest survives the manifest's trip through JSON
    again = Manifest.from_json(trained_on("0123456789abcdef").to_json())
    assert again.features.video_weights == "0123456789abcdef"
