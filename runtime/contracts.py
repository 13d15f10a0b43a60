"""The feature contract every part of auxformer shares (docs/architecture.md, "Data contracts").

One clip is `audio [Ta, 130]`, `audio_mask [Ta]`, `video [Tv, Dv]`, `video_mask [Tv]`. A mask is
false on frames that carry no evidence (no audio stream, no face found); a modality whose mask has
no true entry is *missing*. Masks, not zeros, say what is valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

AUDIO_DIM = 130
# openSMILE ComParE LLDs step by 10 ms unless the feature settings say otherwise (`audio_step_ms`):
# code that turns audio frames into seconds reads `FeatureSettings.audio_fps`, these are the default's
AUDIO_STEP_MS = 10
AUDIO_FPS = 1000 / AUDIO_STEP_MS
MODALITIES = ("audio", "video")
# the model's inputs, in the graph's order, with the axes that vary from batch to batch; a padded
# batch, a `.npz` feature file and a calibration batch hold the same four arrays
DYNAMIC_AXES = {
    "audio": ("batch", "audio_len"),
    "audio_mask": ("batch", "audio_len"),
    "video": ("batch", "video_len"),
    "video_mask": ("batch", "video_len"),
}
INPUTS = tuple(DYNAMIC_AXES)
# a clip's openSMILE functionals, beside the four inputs in a `.npz` (feature corpus, cache): one array per set
FUNCTIONALS = "functionals."
# files the front end reads (anything FFmpeg decodes; these are the suffixes folders are searched for)
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".mpg", ".mpeg", ".wmv", ".3gp"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus"})
MEDIA_SUFFIXES = VIDEO_SUFFIXES | AUDIO_SUFFIXES
# still images: a clip needs audio and frames over time, so these fail with a reason (never a label)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".heic"})


def image_reason(path: str | Path) -> str:
    """Why an image file gets no prediction."""
    return (
        f"an image, not a video: {Path(path).suffix.lower()} files have no audio and no frames over time; "
        "the model needs a video or audio clip"
    )


class Status(str, Enum):
    """Outcome of turning one input into features or a prediction."""

    OK = "ok"
    NO_AUDIO = "no_audio"  # usable, audio missing
    NO_FACE = "no_face"  # usable, video missing
    EMPTY = "empty"  # usable only as a fully-missing clip
    FAILED = "failed"  # not usable: corrupt, not media, ...

    @property
    def usable(self) -> bool:
        return self is not Status.FAILED

    @classmethod
    def of(cls, has_audio: bool, has_video: bool) -> Status:
        """The status of a clip that was read, from which modalities it has."""
        if has_audio and has_video:
            return cls.OK
        if has_video:
            return cls.NO_AUDIO
        return cls.NO_FACE if has_audio else cls.EMPTY


class FeatureError(ValueError):
    """Arrays that break the feature contract."""


@dataclass
class ClipFeatures:
    clip_id: str
    audio: np.ndarray
    audio_mask: np.ndarray
    video: np.ndarray
    video_mask: np.ndarray
    label: str | None = None
    speaker: str | None = None
    status: Status = Status.OK
    reason: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    # utterance-level openSMILE functionals by set name (the classical baseline's input); not a model input
    functionals: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in MODALITIES:
            dtype = np.asarray(getattr(self, name)).dtype
            if dtype.kind != "f":  # integers are not features: most likely the wrong array, or quantised
                raise FeatureError(f"{self.clip_id}: {name} features must be floating point, got {dtype} values")
        self.audio = np.asarray(self.audio, dtype=np.float32)
        self.video = np.asarray(self.video, dtype=np.float32)
        self.audio_mask = np.asarray(self.audio_mask, dtype=bool)
        self.video_mask = np.asarray(self.video_mask, dtype=bool)
        self.status = Status(self.status)
        self.functionals = {k: np.asarray(v, dtype=np.float32).reshape(-1) for k, v in self.functionals.items()}
        self.validate()

    def validate(self) -> None:
        if self.audio.ndim != 2 or self.audio.shape[1] != AUDIO_DIM:
            raise FeatureError(f"{self.clip_id}: audio must be [Ta, {AUDIO_DIM}], got {self.audio.shape}")
        if self.video.ndim != 2:
            raise FeatureError(f"{self.clip_id}: video must be [Tv, Dv], got {self.video.shape}")
        for name in MODALITIES:
            values, mask = getattr(self, name), getattr(self, f"{name}_mask")
            if mask.shape != (values.shape[0],):
                raise FeatureError(f"{self.clip_id}: {name}_mask {mask.shape} does not match {name} {values.shape}")
            if not np.isfinite(values[mask]).all():
                raise FeatureError(f"{self.clip_id}: {name} has non-finite values on valid frames")
        for name, values in self.functionals.items():
            if not np.isfinite(values).all():
                raise FeatureError(f"{self.clip_id}: {name} functionals have non-finite values")

    @classmethod
    def failed(cls, clip_id: str, reason: str, video_dim: int, source: str | None = None) -> ClipFeatures:
        """A clip that could not be turned into features: no frames, status failed, and why."""
        return cls(
            clip_id,
            np.zeros((0, AUDIO_DIM), np.float32),
            np.zeros(0, bool),
            np.zeros((0, video_dim), np.float32),
            np.zeros(0, bool),
            status=Status.FAILED,
            reason=reason,
            info={"source": source},
        )

    @property
    def video_dim(self) -> int:
        return int(self.video.shape[1])

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_mask.any())

    @property
    def has_video(self) -> bool:
        return bool(self.video_mask.any())

    def present(self) -> dict[str, bool]:
        return {"audio": self.has_audio, "video": self.has_video}

    def without(self, modality: str) -> ClipFeatures:
        """The same clip with one modality marked missing (masks false, values zeroed)."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        arrays = self.arrays()
        arrays[modality] = np.zeros_like(arrays[modality])
        arrays[f"{modality}_mask"] = np.zeros_like(arrays[f"{modality}_mask"])
        return ClipFeatures(
            self.clip_id,
            **arrays,
            label=self.label,
            speaker=self.speaker,
            status=self.status,
            reason=self.reason,
            info=dict(self.info),
            functionals={} if modality == "audio" else dict(self.functionals),  # they describe the audio
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The four arrays of the contract, by input name."""
        return {name: getattr(self, name) for name in INPUTS}
