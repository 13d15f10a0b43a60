"""Optimized training (SPEC 4): drop the audio or the video of a clip, never both."""

from __future__ import annotations

import torch

from .data import Batch


def drop_modalities(batch: Batch, p_audio: float, p_video: float, per: str, generator: torch.Generator) -> Batch:
    """With probability p_audio remove the audio, with p_video the video, from one uniform draw so
    both are never removed. `per="sample"` draws per clip, `per="batch"` once (the authors' code).
    A clip that already lacks one modality never loses the other."""
    b = batch.labels.shape[0]
    draws = torch.rand(b if per == "sample" else 1, generator=generator).expand(b)
    drop_audio = (draws < p_audio) & batch.video_mask.any(1)
    drop_video = (draws >= p_audio) & (draws < p_audio + p_video) & batch.audio_mask.any(1)
    keep_a, keep_v = ~drop_audio, ~drop_video
    return Batch(
        audio=batch.audio * keep_a[:, None, None],
        audio_mask=batch.audio_mask & keep_a[:, None],
        video=batch.video * keep_v[:, None, None],
        video_mask=batch.video_mask & keep_v[:, None],
        labels=batch.labels,
        clip_ids=batch.clip_ids,
    )
