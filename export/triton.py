"""A Triton Inference Server model repository for the exported model (and engine, when one was built).

    DIR/auxformer_onnx/config.pbtxt    platform onnxruntime_onnx
    DIR/auxformer_onnx/1/model.onnx
    DIR/auxformer_trt/config.pbtxt     platform tensorrt_plan (only with an engine)
    DIR/auxformer_trt/1/model.plan     (+ model.plan.json, the manifest; Triton ignores it)

Triton owns the batch axis (`max_batch_size`), so `dims` leave it out; -1 marks the variable lengths.
Its dynamic batcher only stacks requests whose shapes agree, so clients batch best when they pad
lengths to a few buckets.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from auxformer.common import atomic
from auxformer.runtime.manifest import Manifest
from auxformer.runtime.profile import Profile

PLATFORMS = {"onnx": ("onnxruntime_onnx", "model.onnx"), "trt": ("tensorrt_plan", "model.plan")}
QUEUE_DELAY_US = 2000  # how long the batcher may hold a request to fill a batch


def config_pbtxt(name: str, kind: str, manifest: Manifest, profile: Profile) -> str:
    platform, filename = PLATFORMS[kind]
    dv, classes = manifest.video_dim, len(manifest.labels)
    audio_dim = manifest.features.audio_dim
    inputs = [("audio", "TYPE_FP32", [-1, audio_dim]), ("audio_mask", "TYPE_BOOL", [-1])]
    inputs += [("video", "TYPE_FP32", [-1, dv]), ("video_mask", "TYPE_BOOL", [-1])]
    outputs = [(out, "TYPE_FP32", [classes]) for out in manifest.output_names]
    preferred = sorted({profile.batch.opt, profile.batch.max})
    lines = [
        f"# {manifest.model.name} ({manifest.precision}); classes: {', '.join(manifest.labels)}",
        "# batch axis implicit (max_batch_size); -1 = frames (audio 100 fps, video ~30 fps)",
        f'name: "{name}"',
        f'platform: "{platform}"',
        f'default_model_filename: "{filename}"',
        f"max_batch_size: {profile.batch.max}",
        *(_tensor("input", *t) for t in inputs),
        *(_tensor("output", *t) for t in outputs),
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]",
        f"  max_queue_delay_microseconds: {QUEUE_DELAY_US}",
        "}",
        f"instance_group [ {{ count: 1, kind: {'KIND_GPU' if kind == 'trt' else 'KIND_AUTO'} }} ]",
    ]
    return "\n".join(lines) + "\n"


def _tensor(section: str, name: str, dtype: str, dims: list[int]) -> str:
    return f'{section} [ {{ name: "{name}", data_type: {dtype}, dims: [ {", ".join(map(str, dims))} ] }} ]'


def write_repository(
    root: str | Path,
    manifest: Manifest,
    profile: Profile,
    onnx_path: Path,
    plan_path: Path | None = None,
    name: str = "auxformer",
) -> list[Path]:
    """Write (or refresh) the repository; returns the files written."""
    root, written = Path(root), []
    models = {"onnx": onnx_path} if plan_path is None else {"onnx": onnx_path, "trt": plan_path}
    for kind, model_file in models.items():
        folder = root / f"{name}_{kind}"
        written.append(folder / "config.pbtxt")
        atomic.write_text(written[-1], config_pbtxt(folder.name, kind, manifest, profile))
        copies = [model_file] + ([Path(f"{model_file}.json")] if kind == "trt" else [])
        for src in copies:
            dst = folder / "1" / src.name.replace(model_file.name, PLATFORMS[kind][1])
            with atomic.atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
            written.append(dst)
    return written
