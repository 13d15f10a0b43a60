"""Augmentation of a training batch's frame sequences (SpecAugment-style, on features).

Time masks mark runs of frames invalid: attention and pooling then skip them, as they skip padding,
so a masked frame is never evidence and no value is made up. Feature masks replace a band of
feature dimensions by the training mean (what z-normalisation maps to 0) on valid frames only.
Neither ever turns an invalid frame (padding, no face, missing modality) valid, and a clip keeps at
least one of its valid frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class MaskSpec:
    time_masks: int = 0  # runs of frames masked per clip
    time_fraction: float = 0.0  # longest run, as a fraction of the clip's valid frames
    feature_masks: int = 0  # bands of dimensions masked per clip
    feature_width: int = 0  # widest band, in dimensions

    @property
    def active(self) -> bool:
        return (self.time_masks > 0 and self.time_fraction > 0) or (self.feature_masks > 0 and self.feature_width > 0)


def time_mask(mask: Tensor, count: int, fraction: float, generator: torch.Generator) -> Tensor:
    """[B, T] bool -> a mask with up to `count` runs per clip set false; runs are placed within the
    clip's valid span and are at most `fraction` of its valid frames long."""
    if count <= 0 or fraction <= 0 or mask.numel() == 0:
        return mask
    b, t = mask.shape
    valid = mask.sum(1)  # [B]
    positions = torch.arange(t)[None, :]
    out = mask.clone()
    for _ in range(count):
        u = torch.rand(2, b, generator=generator)
        width = (u[0] * (fraction * valid + 1)).floor().clamp(max=valid)  # 0 .. fraction * valid
        last_valid = (positions * mask).amax(1)  # runs start inside the clip, not in its padding
        start = (u[1] * (last_valid + 1 - width + 1).clamp(min=1)).floor()
        run = (positions >= start[:, None]) & (positions < (start + width)[:, None])
        out = out & ~run
    # a clip whose valid frames were all masked keeps them: it must not become "missing"
    emptied = ~out.any(1) & mask.any(1)
    return torch.where(emptied[:, None], mask, out)


def feature_mask(
    values: Tensor, mask: Tensor, count: int, width: int, fill: Tensor, generator: torch.Generator
) -> Tensor:
    """[B, T, D] values -> a copy with up to `count` bands of <= `width` dims per clip set to `fill` [D]
    on valid frames; invalid frames are left as they were."""
    if count <= 0 or width <= 0 or values.numel() == 0:
        return values
    b, _, d = values.shape
    dims = torch.arange(d)[None, :]
    banded = torch.zeros(b, d, dtype=torch.bool)
    for _ in range(count):
        u = torch.rand(2, b, generator=generator)
        w = (u[0] * (min(width, d) + 1)).floor()
        start = (u[1] * (d - w + 1)).floor()
        banded |= (dims >= start[:, None]) & (dims < (start + w)[:, None])
    where = banded[:, None, :] & mask[:, :, None]
    return torch.where(where, fill.to(values.dtype), values)


def augment(
    values: Tensor, mask: Tensor, spec: MaskSpec, fill: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Feature masks, then time masks, of one modality of a batch (on the CPU, before `.to(device)`)."""
    if not spec.active:
        return values, mask
    values = feature_mask(values, mask, spec.feature_masks, spec.feature_width, fill, generator)
    return values, time_mask(mask, spec.time_masks, spec.time_fraction, generator)
