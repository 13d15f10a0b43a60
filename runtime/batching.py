"""Pad clips into one batch with masks (numpy, so the runtime and training share it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .contracts import AUDIO_DIM, ClipFeatures, FeatureError


def pad_to(feeds: dict[str, np.ndarray], batch: int, audio_len: int, video_len: int) -> dict[str, np.ndarray]:
    """Grow a padded batch to at least (batch, audio_len, video_len) with masked rows and frames, which
    leave every real clip's output unchanged; never shrinks it."""
    sizes = {"audio": audio_len, "video": video_len}
    out = {}
    for name, value in feeds.items():
        rows = max(batch, value.shape[0])
        frames = max(sizes[name.removesuffix("_mask")], value.shape[1])
        pad = [(0, rows - value.shape[0]), (0, frames - value.shape[1])] + [(0, 0)] * (value.ndim - 2)
        out[name] = np.pad(value, pad) if any(p[1] for p in pad) else value
    return out


def pad_batch(clips: Sequence[ClipFeatures], missing: str | None = None) -> dict[str, np.ndarray]:
    """Right-pad to the longest clip. Every length is at least 1: a zero-length stream becomes one
    masked step (onnxruntime yields NaN on empty sequences). `missing` forces a modality out."""
    if not clips:
        raise ValueError("pad_batch needs at least one clip")
    dims = {c.video_dim for c in clips}
    if len(dims) > 1:
        raise FeatureError(f"clips in one batch have different video dims {sorted(dims)}")
    b, dv = len(clips), dims.pop()
    ta = max(1, *(len(c.audio_mask) for c in clips))
    tv = max(1, *(len(c.video_mask) for c in clips))
    out = {
        "audio": np.zeros((b, ta, AUDIO_DIM), np.float32),
        "audio_mask": np.zeros((b, ta), bool),
        "video": np.zeros((b, tv, dv), np.float32),
        "video_mask": np.zeros((b, tv), bool),
    }
    for i, clip in enumerate(clips):
        for m in ("audio", "video"):
            if m == missing:
                continue
            n = len(getattr(clip, f"{m}_mask"))
            mask = getattr(clip, f"{m}_mask")
            out[m][i, :n] = np.where(mask[:, None], getattr(clip, m), 0.0)
            out[f"{m}_mask"][i, :n] = mask
    return out
