"""Shared helpers of the runtime tests: clip features of chosen lengths, feature files, manifest edits and
TensorRT sidecars. The tiny model they run is `export_support.tiny_export()`; media files come from
`media_factory`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.runtime.contracts import ClipFeatures
from auxformer.runtime.manifest import Manifest
from auxformer.runtime.profile import Profile

LABELS = ["anger", "happy", "neutral", "sad"]
VIDEO_DIM = 16
SHAPES = {
    "batch": {"min": 1, "opt": 4, "max": 8},
    "audio_len": {"min": 1, "opt": 64, "max": 320},
    "video_len": {"min": 1, "opt": 20, "max": 208},
}


def sidecar(onnx_path: Path, plan_path: Path, engine: dict[str, Any]) -> Path:
    """`model.plan.json` beside `plan_path`: the ONNX model's manifest with the engine record and, as an
    export writes it, the engine's profile as its shapes."""
    import onnxruntime as ort

    from auxformer.runtime.manifest import METADATA_KEY

    meta = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_modelmeta()
    manifest = Manifest.from_json(meta.custom_metadata_map[METADATA_KEY])
    manifest.engine = engine
    manifest.shapes = Profile.from_dict(engine["profile"])
    path = Path(f"{plan_path}.json")
    path.write_text(manifest.to_json())
    return path


_SCRATCH = tempfile.TemporaryDirectory(prefix="auxformer-runtime-test-")  # removed when the process ends


def scratch_dir() -> Path:
    """A fresh folder for files shared by the tests of one process (module- and process-wide)."""
    return Path(tempfile.mkdtemp(dir=_SCRATCH.name))


def feature_clip(
    clip_id: str,
    audio_len: int,
    video_len: int,
    seed: int = 0,
    audio: bool = True,
    video: bool = True,
    video_dim: int = VIDEO_DIM,
    face_rate: float = 0.8,
    label: str | None = None,
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
        label=label,
    )


def ragged_clips(n: int, seed: int = 0) -> list[ClipFeatures]:
    """`n` clips of different lengths (0.2 to 3 s), a few with one modality missing."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        seconds = float(rng.uniform(0.2, 3.0))
        clips.append(
            feature_clip(
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
