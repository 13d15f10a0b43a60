"""One media file -> one clip's features (the contract of docs/architecture.md), with a status and a reason.

    from auxformer.runtime.features import extract, FeatureSettings
    clip = extract("clip.mp4")                       # BlazeFace detector, expression embedder
    clip.status, clip.reason, clip.audio.shape, clip.video.shape

Stages: decode (PyAV, once per file) -> audio features (openSMILE) and face tracking (every k-th
frame) -> face embeddings. A modality that is absent is *missing* (mask all false), never filled in:

- no audio stream: `audio` has 0 frames; a silent or too-short track keeps its frames, masked;
- no video stream: `video` has 0 frames; frames without a face are masked, a clip with no face in
  any frame has its video missing;
- status: ok, no_audio, no_face (video missing), empty (both), failed (nothing usable: corrupt,
  truncated before any data, zero bytes, not media, longer than `max_seconds`).

Problems in the input never raise: they come back as the status and reason. Problems in the setup
(unknown embedder, missing weights, missing packages) raise when the extractor is built, before any
clip is read, since every clip would fail the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.common.config_dicts import DictConfig

from .contracts import AUDIO_DIM, AUDIO_STEP_MS, ClipFeatures, Status
from .media.audio_features import ComParE, describe
from .media.decode import DecodedMedia, MediaError, decode
from .media.expression import LABELS as EXPRESSION_LABELS
from .media.expression import weights_digest as expression_weights_digest
from .media.face_embedders import build_embedder
from .media.faces import DETECTORS, build_detector, shipped_weights_sha256, track_faces
from .media.functionals import Functionals

# pixels: pixels_size ** 2; expression: + 7 with expression_logits
EMBEDDER_DIMS = {"expression": 128, "pixels": None, "vggface": 4096}
LONG_CLIPS = ("fail", "truncate")
STAGES = ("decode", "audio", "detect", "embed")


@dataclass(frozen=True)
class FeatureSettings(DictConfig):
    """Everything that changes the features. Its `to_dict()` is stored with every feature corpus
    and cache entry, so features made with other settings are never mixed up with these."""

    video_embedder: str = "expression"  # expression | pixels | vggface
    detector: str = "blazeface"  # blazeface | haar | ssd (runtime/media/faces.py)
    # short sha256 of a shipped detector's weights, filled in from the installed file; settings that
    # name other weights (features a model was trained on with another release's detector) are refused
    detector_sha256: str | None = None
    detect_every: int = 3  # run the detector on every k-th frame, interpolate in between
    min_face: float = 0.1  # smallest face side, as a fraction of the frame's shorter side
    face_margin: float = 0.2  # crop margin on each side, as a fraction of the face box
    pixels_size: int = 64  # side of the pixels embedder's grey crop
    # append the 7 expression logits to the expression embedding; off: on the demo they did not help
    # (test macro-F1 audio+video / video only 1.000 / 0.448 with them, 1.000 / 0.457 without)
    expression_logits: bool = False
    # frames are downscaled so their longer side is at most this (CREMA-D's 480x360 stays as it is);
    # it bounds memory too: a 60 s clip at 30 fps holds ~0.9 GB of RGB frames
    max_side: int = 480
    audio_rate: int = 16000
    audio_step_ms: int = AUDIO_STEP_MS  # openSMILE frame step; the paper's LLDs step by 16 ms
    silence_dbfs: float = -60.0  # a track whose peak is below this is silent: audio missing
    digital_silence_dbfs: float = -90.0  # frames that see only samples below this (padding) are masked
    max_seconds: float = 60.0  # longer clips fail (or are cut, with long_clips="truncate")
    long_clips: str = "fail"
    vggface_weights: str | None = None  # path to vgg_face_dag.pth
    vggface_preprocess: str = "unit"  # unit: [-1, 1] as docs/model.md and the exported face encoder | dag-mean
    ssd_prototxt: str | None = None
    ssd_model: str | None = None
    providers: tuple[str, ...] = ()  # onnxruntime providers of detector and embedders; () = CPU, ("auto",) = all
    threads: int = 1  # per process: decoding and onnxruntime

    def __post_init__(self) -> None:
        if self.video_embedder not in EMBEDDER_DIMS:
            raise ValueError(f"video_embedder must be one of {', '.join(EMBEDDER_DIMS)}, got {self.video_embedder!r}")
        if self.long_clips not in LONG_CLIPS:
            raise ValueError(f"long_clips must be one of {', '.join(LONG_CLIPS)}, got {self.long_clips!r}")
        if self.vggface_preprocess not in ("unit", "dag-mean"):
            raise ValueError(f"vggface_preprocess must be 'unit' or 'dag-mean', got {self.vggface_preprocess!r}")
        if self.detect_every < 1 or self.max_seconds <= 0:
            raise ValueError("detect_every must be >= 1 and max_seconds > 0")
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, got {self.detector!r}")
        shipped = shipped_weights_sha256(self.detector)
        if self.detector_sha256 is None:
            object.__setattr__(self, "detector_sha256", shipped)
        elif self.detector_sha256 != shipped:
            raise ValueError(
                f"the {self.detector!r} detector's weights were {self.detector_sha256} when these features were "
                f"made; this installation ships {shipped}: re-extract the features (or install that release)"
            )
        if not 1 <= self.audio_step_ms <= 60:  # beyond the 60 ms window, frames would skip signal
            raise ValueError(f"audio_step_ms must be within 1..60, got {self.audio_step_ms}")
        object.__setattr__(self, "providers", tuple(self.providers))

    @property
    def audio_fps(self) -> float:
        return 1000 / self.audio_step_ms

    @property
    def video_dim(self) -> int:
        if self.video_embedder == "expression":
            return EMBEDDER_DIMS["expression"] + (len(EXPRESSION_LABELS) if self.expression_logits else 0)
        return EMBEDDER_DIMS[self.video_embedder] or self.pixels_size**2

    @property
    def video_weights(self) -> str | None:
        """Short sha256 of the shipped weights the embedder runs (None for one without shipped weights):
        a model trained on features of other weights is refused (`clip_inputs.check_settings`)."""
        return expression_weights_digest() if self.video_embedder == "expression" else None

    def feature_spec(self) -> dict[str, Any]:
        """What a corpus and a model manifest record about these features (docs/architecture.md)."""
        return {
            "audio_dim": AUDIO_DIM,
            "audio_features": describe(self.audio_step_ms),
            "video_dim": self.video_dim,
            "video_embedder": self.video_embedder,
            "video_weights": self.video_weights,
            "face_detector": self.detector,
            "feature_settings": self.to_dict(),
        }


class FeatureExtractor:
    """Builds the stages once (openSMILE configs, cascade, ONNX session) and extracts clip by clip.

    `functionals` names openSMILE functional sets to compute too, from the same decoded audio (for the
    classical baseline; `clip.functionals`). `timings` accumulates seconds per stage over the clips
    extracted, for benchmarks."""

    def __init__(self, settings: FeatureSettings | None = None, functionals: tuple[str, ...] = ()):
        s = self.settings = settings or FeatureSettings()
        self.audio = ComParE(s.silence_dbfs, s.digital_silence_dbfs, s.audio_step_ms)
        self.functionals = Functionals(tuple(functionals), s.digital_silence_dbfs) if functionals else None
        self.detector = build_detector(s.detector, s.min_face, s.ssd_prototxt, s.ssd_model, s.threads, s.providers)
        self.embedder = build_embedder(
            s.video_embedder,
            s.face_margin,
            s.pixels_size,
            s.vggface_weights,
            s.providers,
            s.threads,
            s.vggface_preprocess,
            s.expression_logits,
        )
        self.timings = dict.fromkeys(STAGES, 0.0)

    def __call__(self, path: str | Path, clip_id: str | None = None) -> ClipFeatures:
        clip_id = clip_id or Path(path).stem
        try:
            return self._extract(Path(path), clip_id)
        except MediaError as err:
            return self.failed(clip_id, str(err), path)
        except Exception as err:  # a decoder or library surprise must not stop a batch
            return self.failed(clip_id, f"unexpected {type(err).__name__}: {err}", path)

    def failed(self, clip_id: str, reason: str, path: str | Path | None = None) -> ClipFeatures:
        return ClipFeatures.failed(clip_id, reason, self.settings.video_dim, str(path) if path is not None else None)

    def _extract(self, path: Path, clip_id: str) -> ClipFeatures:
        s = self.settings
        t0 = time.perf_counter()
        media = decode(
            path,
            audio_rate=s.audio_rate,
            max_side=s.max_side,
            max_seconds=s.max_seconds,
            truncate=s.long_clips == "truncate",
            threads=s.threads,
        )
        t1 = time.perf_counter()
        audio = self.audio(media.audio, media.audio_rate)
        functionals = self.functionals(media.audio, media.audio_rate) if self.functionals and audio.mask.any() else {}
        t2 = time.perf_counter()
        track = track_faces(media.frames, self.detector, s.detect_every)
        t3 = time.perf_counter()
        video = self.embedder(media.frames, track)
        t4 = time.perf_counter()
        for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            self.timings[stage] += seconds
        video_reason = _video_reason(media, track.valid)
        clip = ClipFeatures(
            clip_id,
            audio.values,
            audio.mask,
            video,
            track.valid,
            status=Status.of(bool(audio.mask.any()), bool(track.valid.any())),
            reason="; ".join(r for r in (audio.reason, video_reason, *media.notes) if r),
            info={
                "source": str(path),
                "duration": round(media.duration, 3),
                "video_fps": round(media.fps, 3),
                "audio_fps": s.audio_fps,
                "frames": len(media.frames),
                "face_frames": int(track.valid.sum()),
                "face_rate": round(track.rate, 4),
                "audio_start": round(media.audio_start, 3),
                "video_start": round(float(media.frame_times[0]), 3) if len(media.frame_times) else None,
                "seconds": round(t4 - t0, 4),
            },
            functionals=functionals,
        )
        return clip


def _video_reason(media: DecodedMedia, valid: np.ndarray) -> str:
    if not media.has_video_stream:
        return "no video stream"
    if not len(valid):
        return "video stream has no frames"
    return "" if valid.any() else f"no face found in any of {len(valid)} frames"


_extractors: dict[FeatureSettings, FeatureExtractor] = {}


def extractor_for(settings: FeatureSettings | None = None) -> FeatureExtractor:
    """One extractor per settings per process, so repeated `extract` calls reuse the stages."""
    settings = settings or FeatureSettings()
    if settings not in _extractors:
        _extractors[settings] = FeatureExtractor(settings)
    return _extractors[settings]


def extract(path: str | Path, settings: FeatureSettings | None = None, clip_id: str | None = None) -> ClipFeatures:
    """Features of one media file; see the module docstring for statuses and masks."""
    return extractor_for(settings)(path, clip_id)
