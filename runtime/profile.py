"""The shapes a model runs at: min/opt/max of batch, audio_len and video_len (one TensorRT optimization
profile). The manifest carries one under `shapes`; a runner that is bound to one (a TensorRT engine)
exposes it, and the session and export verification ask it which clips and batches fit.

The minimum length is always 1 in exported models: a clip may be short, and a missing modality is one
masked step (`pad_batch` clamps every length to >= 1).
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .batching import pad_to
from .contracts import AUDIO_DIM, DYNAMIC_AXES

AXES = ("batch", "audio_len", "video_len")


class ProfileError(ValueError):
    """Shape ranges that cannot form a TensorRT optimization profile."""


@dataclass(frozen=True)
class Range:
    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        values = (self.min, self.opt, self.max)
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
            raise ProfileError(f"a shape range is three integers, got {self.min!r}/{self.opt!r}/{self.max!r}")
        for which, v in zip(("min", "opt", "max"), values, strict=True):
            object.__setattr__(self, which, int(v))  # numpy integers in, plain ints out (JSON)
        if not 1 <= self.min <= self.opt <= self.max:
            raise ProfileError(f"a shape range needs 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}")


@dataclass(frozen=True)
class Profile:
    batch: Range
    audio_len: Range
    video_len: Range

    def axis(self, name: str) -> Range:
        return getattr(self, name)

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {name: asdict(self.axis(name)) for name in AXES}

    @classmethod
    def from_dict(cls, data: Any) -> Profile:
        """From {"batch": {"min", "opt", "max"}, "audio_len": {...}, "video_len": {...}} (the manifest's
        `shapes`); ProfileError says what is malformed."""
        if not isinstance(data, dict) or sorted(data) != sorted(AXES):
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ProfileError(f"a profile has the axes {list(AXES)}, got {keys}")
        ranges = {}
        for name in AXES:
            value = data[name]
            if not isinstance(value, dict) or sorted(value) != ["max", "min", "opt"]:
                raise ProfileError(f"{name} needs min, opt and max, got {value!r}")
            ranges[name] = Range(**value)
        return cls(**ranges)

    def accepts(self, batch: int = 1, audio_len: int = 1, video_len: int = 1) -> str | None:
        """Why a batch of this shape (a clip: batch 1, its frame counts) cannot run under this profile,
        or None when it can. Only the maxima refuse: a smaller shape is padded up by `fit`."""
        if batch > self.batch.max:
            return f"a batch of {batch} clips, the engine takes at most {self.batch.max}"
        for axis, n in (("audio_len", audio_len), ("video_len", video_len)):
            high = self.axis(axis).max
            if n > high:
                return (
                    f"{axis.split('_')[0]} has {n} frames, the engine takes at most {high}: "
                    "rebuild the engine with a larger profile or cut the clip"
                )
        return None

    def fit(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Pad a batch up to the profile's minimum shapes (masked rows and frames, so outputs don't change)."""
        return pad_to(feeds, self.batch.min, self.audio_len.min, self.video_len.min)

    def input_shapes(self, video_dim: int, audio_dim: int = AUDIO_DIM) -> dict[str, tuple[tuple[int, ...], ...]]:
        """(min, opt, max) shape of every model input, in the I/O order of docs/architecture.md."""
        feature_dims = {"audio": (audio_dim,), "video": (video_dim,), "audio_mask": (), "video_mask": ()}
        out = {}
        for name, axes in DYNAMIC_AXES.items():
            ranges = [self.axis(a) for a in axes]
            out[name] = tuple(
                (*(getattr(r, which) for r in ranges), *feature_dims[name]) for which in ("min", "opt", "max")
            )
        return out


def batch_shape(feeds: dict[str, np.ndarray]) -> dict[str, int]:
    """{"batch", "audio_len", "video_len"} of a padded batch, for `Profile.accepts(**...)`."""
    (batch, audio_len), video_len = feeds["audio"].shape[:2], feeds["video"].shape[1]
    return {"batch": int(batch), "audio_len": int(audio_len), "video_len": int(video_len)}
