"""Shared helpers of the runtime tests: a tiny AuxFormer exported to ONNX once per test process, and
clip features of chosen lengths (no media files: those tests live in their own modules)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

from auxformer.runtime.contracts import ClipFeatures
from auxformer.runtime.manifest import FeatureSpec, Manifest, ModelRecord, PredictionSpec

LABELS = ["anger", "happy", "neutral", "sad"]
VIDEO_DIM = 16
SHAPES = {
    "batch": {"min": 1, "opt": 4, "max": 8},
    "audio_len": {"min": 1, "opt": 64, "max": 320},
    "video_len": {"min": 1, "opt": 20, "max": 208},
}


def input_profile(shapes: dict[str, dict[str, int]], video_dim: int) -> dict[str, list[tuple[int, ...]]]:
    """The manifest's axis ranges as (min, opt, max) shapes of each model input (a TensorRT profile)."""
    feature_dims = {"audio": (130,), "video": (video_dim,), "audio_mask": (), "video_mask": ()}
    lengths = {"audio": "audio_len", "audio_mask": "audio_len", "video": "video_len", "video_mask": "video_len"}
    return {
        name: [(shapes["batch"][k], shapes[lengths[name]][k], *feature_dims[name]) for k in ("min", "opt", "max")]
        for name in lengths
    }


def sidecar(onnx_path: Path, plan_path: Path, engine: dict[str, object]) -> Path:
    """`model.plan.json` beside `plan_path`: the ONNX model's manifest plus the engine record."""
    import onnxruntime as ort

    from auxformer.runtime.manifest import METADATA_KEY

    meta = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_modelmeta()
    manifest = Manifest.from_json(meta.custom_metadata_map[METADATA_KEY])
    manifest.engine = engine
    path = Path(f"{plan_path}.json")
    path.write_text(manifest.to_json())
    return path


_SCRATCH = tempfile.TemporaryDirectory(prefix="auxformer-runtime-test-")  # removed when the process ends


def scratch_dir() -> Path:
    """A fresh folder for files shared by the tests of one process (module- and process-wide)."""
    return Path(tempfile.mkdtemp(dir=_SCRATCH.name))


@functools.cache
def tiny_onnx() -> Path:
    """`model.onnx` of a tiny AuxFormer with non-trivial normalisation, exported once per process."""
    import torch

    from auxformer.export.onnx_export import export_onnx
    from auxformer.train.config import ModelConfig
    from auxformer.train.model import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(num_classes=len(LABELS), video_dim=VIDEO_DIM, d_model=20, num_heads=2, num_layers=1)
    model = build_model("auxformer", cfg)
    g = torch.Generator().manual_seed(1)
    model.set_normalization(
        {
            m: (torch.randn(d, generator=g), torch.rand(d, generator=g) + 0.5)
            for m, d in (("audio", 130), ("video", VIDEO_DIM))
        }
    )
    manifest = Manifest(
        labels=LABELS,
        features=FeatureSpec(audio_dim=130, video_dim=VIDEO_DIM, video_embedder="test"),
        model=ModelRecord(model.name, cfg.to_dict()),
        heads=list(model.head_modalities),
        prediction=PredictionSpec(cfg.prediction, model.head_modalities),
        shapes=SHAPES,
    )
    return export_onnx(model.eval(), manifest, scratch_dir() / "model.onnx").path


def make_clip(
    clip_id: str,
    audio_len: int,
    video_len: int,
    seed: int = 0,
    audio: bool = True,
    video: bool = True,
    video_dim: int = VIDEO_DIM,
    face_rate: float = 0.8,
) -> ClipFeatures:
    """Random features; some video frames have no face; `audio=False` / `video=False` leave that
    modality missing (no frames at all for audio, frames without faces for video)."""
    rng = np.random.default_rng(seed)
    # the same draws whatever is left out, so clips differing only in a missing modality are comparable
    audio_values = rng.standard_normal((audio_len, 130)).astype(np.float32)
    video_values = rng.standard_normal((video_len, video_dim)).astype(np.float32)
    video_mask = rng.random(video_len) < face_rate
    if video_len:
        video_mask[0] = True
    if not video:
        video_mask[:] = False
    ta = audio_len if audio else 0
    return ClipFeatures(
        clip_id,
        audio_values[:ta],
        np.ones(ta, bool),
        video_values * video_mask[:, None],
        video_mask,
    )


def ragged_clips(n: int, seed: int = 0) -> list[ClipFeatures]:
    """`n` clips of different lengths (0.2 to 3 s), a few with one modality missing."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        seconds = float(rng.uniform(0.2, 3.0))
        clips.append(
            make_clip(
                f"c{i:03d}",
                int(seconds * 100),
                int(seconds * 30),
                seed=seed * 1000 + i,
                audio=i % 7 != 3,
                video=i % 5 != 2,
            )
        )
    return clips


def write_npz(clip: ClipFeatures, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **clip.arrays())
    return path


def with_manifest(source: Path, out: Path, **changes: object) -> Path:
    """A copy of `source` whose embedded manifest has `changes` applied (same graph, same weights); a
    dict given for a typed part (features, prediction, ...) changes those fields of it."""
    import dataclasses

    import onnx

    from auxformer.runtime.manifest import METADATA_KEY

    proto = onnx.load_model(str(source))
    (entry,) = [p for p in proto.metadata_props if p.key == METADATA_KEY]
    manifest = Manifest.from_json(entry.value)
    for name, value in changes.items():
        part = getattr(manifest, name)
        if isinstance(value, dict) and dataclasses.is_dataclass(part):
            changes[name] = dataclasses.replace(part, **value)
    manifest = dataclasses.replace(manifest, **changes)
    entry.value = manifest.to_json()
    onnx.save_model(proto, str(out))
    return out
