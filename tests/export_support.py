"""The tiny AuxFormer every test that needs a model uses (fast to export on a 2-core CPU), exported once
per test process by `tiny_export()`; and feature batches at chosen shapes for the export tests."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from auxformer.export.onnx_export import export_onnx
from auxformer.export.torch_runner import TorchRunner
from auxformer.runtime.manifest import FeatureSpec, Manifest, ModelRecord, PredictionSpec
from auxformer.runtime.profile import Profile, Range
from auxformer.train.config import ModelConfig
from auxformer.train.model import AuxFormer, build_model

from .runtime_support import LABELS, VIDEO_DIM, scratch_dir, with_manifest

PROFILE = Profile(Range(1, 4, 32), Range(1, 64, 320), Range(1, 20, 208))


def tiny_model(name: str = "auxformer", seed: int = 0, **overrides: object) -> AuxFormer:
    torch.manual_seed(seed)
    cfg = ModelConfig(num_classes=len(LABELS), video_dim=VIDEO_DIM, d_model=20, num_heads=2, num_layers=1, **overrides)
    model = build_model(name, cfg)
    g = torch.Generator().manual_seed(seed + 1)
    # non-trivial statistics, so a graph that skipped the in-graph normalisation would disagree
    model.set_normalization(
        {
            m: (torch.randn(dim, generator=g), torch.rand(dim, generator=g) + 0.5)
            for m, dim in (("audio", 130), ("video", VIDEO_DIM))
        }
    )
    return model.eval()


def tiny_manifest(model: AuxFormer) -> Manifest:
    return Manifest(
        labels=LABELS,
        features=FeatureSpec(audio_dim=130, video_dim=VIDEO_DIM, video_embedder="test"),
        model=ModelRecord(model.name, model.cfg.to_dict()),
        heads=list(model.head_modalities),
        prediction=PredictionSpec(model.cfg.prediction, model.head_modalities),
        shapes=PROFILE,
    )


@dataclass
class Exported:
    model: AuxFormer
    manifest: Manifest
    path: Path
    node_count: int


@functools.cache
def tiny_export() -> Exported:
    """The tiny model exported once per test process (an export takes seconds)."""
    model = tiny_model()
    manifest = tiny_manifest(model)
    result = export_onnx(model, manifest, scratch_dir() / "model.onnx")
    return Exported(model, manifest, result.path, result.node_count)


def media_model(folder: Path) -> Path:
    """The tiny model in `folder`, its manifest saying it was trained on the media front end's 4x4 grey
    face crops (16 dims, the tiny model's video_dim), so it runs on media files."""
    from auxformer.runtime.features import FeatureSettings

    settings = FeatureSettings(video_embedder="pixels", pixels_size=4)
    assert settings.video_dim == VIDEO_DIM
    features = FeatureSpec(audio_dim=130, video_dim=VIDEO_DIM, video_embedder="pixels", settings=settings.to_dict())
    return with_manifest(tiny_export().path, folder / "model.onnx", features=features)


def feature_batch(
    batch: int, audio_len: int, video_len: int, seed: int = 0, missing: str | None = None
) -> dict[str, np.ndarray]:
    """Random features with ragged valid lengths (a padded batch); `missing` blanks one modality."""
    rng = np.random.default_rng(seed)
    out = {
        "audio": rng.standard_normal((batch, audio_len, 130)).astype(np.float32),
        "video": rng.standard_normal((batch, video_len, VIDEO_DIM)).astype(np.float32),
    }
    for m, t in (("audio", audio_len), ("video", video_len)):
        lengths = rng.integers(1, t + 1, batch)
        lengths[0] = t  # one clip spans the whole padded length
        mask = np.arange(t)[None, :] < lengths[:, None]
        if m == missing:
            mask[:] = False
        out[f"{m}_mask"] = mask
        out[m] *= mask[..., None]
    return out


def torch_outputs(exported: Exported, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The PyTorch reference outputs, in the exported model's output order."""
    return list(TorchRunner(exported.model, exported.manifest).run(feeds).values())
