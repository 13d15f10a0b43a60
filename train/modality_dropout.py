"""Optimized training (SPEC 4): drop the audio or the video of a clip, never both."""

from __future__ import annotations

import torch

from .data import Batch


def draw(n: int, per: str, generator: torch.Generator) -> torch.Tensor:
    """One uniform draw per clip (`per="sample"`) or one shared by the batch (`per="batch"`, the
    authors' code). Drawn for a whole global batch so data-parallel processes agree."""
    return torch.rand(n if per == "sample" else 1, generator=generator).expand(n)


def apply(batch: Batch, draws: torch.Tensor, p_audio: float, p_video: float) -> Batch:
    """draw < p_audio removes the audio, p_audio <= draw < p_audio + p_video the video: never both.
    A clip that already lacks one modality never loses the other."""
    draws = draws.to(batch.audio_mask.device)
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


def drop_modalities(batch: Batch, p_audio: float, p_video: float, per: str, generator: torch.Generator) -> Batch:
    return apply(batch, draw(len(batch.labels), per, generator), p_audio, p_video)
