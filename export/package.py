"""A trained run as an export source: the model, its checkpoint metadata, and the manifest
(docs/architecture.md, "Model package") that every exported file carries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auxformer.runtime.manifest import FeatureSpec, Manifest, ModelRecord, PredictionSpec, TrainingRecord
from auxformer.runtime.profile import Profile
from auxformer.train import checkpoint
from auxformer.train.checkpoint import Checkpoint
from auxformer.train.corpus import CorpusEntry, FeatureCorpus
from auxformer.train.model import AuxFormer, count_parameters
from auxformer.train.splits import read_splits

# corpus.json keys the manifest's FeatureSpec takes from a checkpoint's feature spec (the rest is provenance);
# face_detector repeats feature_settings' detector
_FEATURE_KEYS = (
    "audio_dim",
    "video_dim",
    "audio_features",
    "video_embedder",
    "video_weights",
    "feature_settings",
    "face_detector",
)


@dataclass
class Source:
    """What `auxformer-export RUN_OR_CHECKPOINT` starts from."""

    model: AuxFormer
    ckpt: Checkpoint
    checkpoint_path: Path
    run_dir: Path

    @classmethod
    def load(cls, run_or_checkpoint: str | Path) -> Source:
        path = checkpoint.resolve(run_or_checkpoint)
        model, ckpt = checkpoint.load_model(path)
        return cls(model, ckpt, path, path.parent)

    @property
    def labels(self) -> list[str]:
        return list(self.ckpt.run.labels)

    @property
    def heads(self) -> list[str]:
        """Head names in the order of the per-head outputs `logits_<head>`."""
        return list(self.model.head_modalities)

    @property
    def calibration(self) -> dict[str, Any]:
        """Temperature scaling fitted on dev at the end of training (empty for older checkpoints)."""
        return self.ckpt.calibration.to_dict() if self.ckpt.calibration else {}

    @property
    def temperature(self) -> float:
        return float(self.calibration.get("temperature", 1.0))

    def training_entries(self, corpus: FeatureCorpus) -> list[CorpusEntry]:
        """The corpus's clips that were in this run's training partition when `corpus` is the run's own
        corpus (calibrating on dev or test clips would leak them into the evaluation); else all."""
        partitions = read_splits(self.run_dir)
        own = self.ckpt.run.corpus
        if not partitions or own is None or Path(own).resolve() != corpus.root.resolve():
            return list(corpus.entries)
        return [e for e in corpus.entries if partitions.get(e.clip_id) == "train"]

    def metrics(self) -> dict[str, Any]:
        path = self.run_dir / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def manifest(self, profile: Profile, precision: str = "fp32") -> Manifest:
        cfg = self.model.cfg
        spec = dict(self.ckpt.run.feature_spec)
        test = self.metrics().get("test", {})
        built = Manifest(
            labels=self.labels,
            features=FeatureSpec(
                audio_dim=cfg.audio_dim,
                video_dim=cfg.video_dim,
                video_embedder=spec.get("video_embedder"),
                video_weights=spec.get("video_weights"),
                audio_features=spec.get("audio_features"),
                settings=spec.get("feature_settings"),
                provenance={k: v for k, v in spec.items() if k not in _FEATURE_KEYS},
            ),
            model=ModelRecord(self.model.name, cfg.to_dict(), count_parameters(self.model)),
            heads=self.heads,
            prediction=self.prediction(),
            shapes=profile,
            normalization={
                "in_graph": True,
                "statistics": "per-dimension mean and std of the training partition's valid frames",
                **{m: _norm_summary(getattr(self.model, f"{m}_norm")) for m in ("audio", "video")},
            },
            training=TrainingRecord(
                run=str(self.run_dir),
                checkpoint=str(self.checkpoint_path),
                corpus=self.ckpt.run.corpus,
                epoch=self.ckpt.epoch,
                dev_loss=self.ckpt.dev_loss,
                train_config=self.ckpt.run.train_config.to_dict(),
                length_stats=self.ckpt.run.length_stats,
                test={k: test[k] for k in ("macro_f1", "micro_f1") if k in test},
            ),
            precision=precision,
        )
        # read back as the runtime will read it: a value of the wrong type is refused here, before
        # minutes of exporting, and the parts hold what JSON gives back (lists, not tuples)
        return Manifest.from_json(built.to_json(), f"the manifest of {self.checkpoint_path}")

    def prediction(self) -> PredictionSpec:
        """The fusion rule, the temperatures fitted on dev, and which modalities each head reads (the
        runtime drops the heads of absent modalities)."""
        return PredictionSpec(
            rule=self.model.cfg.prediction,
            head_modalities=dict(self.model.head_modalities),
            temperature=self.temperature,
            head_temperatures=self.calibration.get("head_temperatures", {}),
        )


def _norm_summary(norm: Any) -> dict[str, Any]:
    mean, std = norm.mean.detach(), norm.std.detach()
    return {
        "dims": int(mean.numel()),
        "mean_range": [float(mean.min()), float(mean.max())],
        "std_range": [float(std.min()), float(std.max())],
    }
