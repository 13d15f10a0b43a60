"""What `Session.predict` accepts as a clip, turned into ClipFeatures.

- ClipFeatures (from the media front end, a corpus, or your own extractor);
- a mapping of arrays: `audio [Ta,130]`, `video [Tv,Dv]`, optional `audio_mask` / `video_mask`
  (all true when left out) and `clip_id`;
- a path: a `.npz` feature file (the corpus format: the four arrays) or a media file, which goes
  through the media front end (`auxformer.runtime.features`) with the feature settings the model
  was trained with (recorded in its manifest).

Bad input from a file never raises here: it becomes a failed clip with a reason.
"""

from __future__ import annotations

import importlib
import os
import threading
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .contracts import IMAGE_SUFFIXES, INPUTS, ClipFeatures, FeatureError, image_reason
from .manifest import Manifest, ManifestError

ClipInput = ClipFeatures | str | os.PathLike | Mapping[str, Any]
FEATURE_SUFFIXES = (".npz",)
ZIP_MAGIC = b"PK"  # a `.npz` is a zip archive (local file header PK\3\4, or an empty one's PK\5\6)


class NotAFeatureFile(ValueError):
    """A file that is not a `.npz` archive of feature arrays."""


def from_arrays(arrays: Mapping[str, Any], clip_id: str) -> ClipFeatures:
    """ClipFeatures from arrays; a mask that is left out marks every frame valid."""
    missing = [k for k in ("audio", "video") if k not in arrays]
    if missing:
        raise FeatureError(f"{clip_id}: arrays need {missing} (and may have audio_mask / video_mask)")
    audio, video = np.asarray(arrays["audio"]), np.asarray(arrays["video"])
    return ClipFeatures(
        str(arrays.get("clip_id", clip_id)),
        audio,
        arrays.get("audio_mask", np.ones(len(audio), bool)),
        video,
        arrays.get("video_mask", np.ones(len(video), bool)),
    )


def load_npz(path: str | Path, clip_id: str | None = None) -> ClipFeatures:
    """A `.npz` feature file; a file that cannot be read as one, or whose arrays break the feature
    contract (shapes, integer or non-finite values), comes back as a failed clip saying why."""
    path = Path(path)
    clip_id = clip_id or path.stem
    try:
        clip = from_arrays(read_npz(path), clip_id)
    except FeatureError as err:
        reason = str(err)
    except NotAFeatureFile as err:
        reason = f"not a feature file ({err})"
    except FileNotFoundError:
        reason = "no such file"
    except OSError as err:
        reason = f"cannot read it ({err.strerror or err})"
    except Exception as err:  # numpy's errors on a damaged member are this clip's failure, not the batch's
        reason = f"not a feature file ({type(err).__name__}: {err})"
    else:
        clip.info["source"] = str(path)
        return clip
    return ClipFeatures.failed(clip_id, reason, 0, str(path))


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The contract's arrays in a `.npz` file (never unpickling anything); NotAFeatureFile says what
    the file is instead."""
    with open(path, "rb") as f:
        head = f.read(len(ZIP_MAGIC))
    if not head:
        raise NotAFeatureFile("empty file")
    if head != ZIP_MAGIC:
        raise NotAFeatureFile("not a zip archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in INPUTS if k in data}
    except zipfile.BadZipFile as err:
        raise NotAFeatureFile(f"damaged zip archive: {err}") from err


def front_end_module() -> ModuleType:
    """`auxformer.runtime.features`, imported on first use so feature arrays never load the media packages."""
    return importlib.import_module(f"{__package__}.features")


def settings_for(manifest: Manifest, settings: Any = None) -> Any:
    """The front end's FeatureSettings for this model: `settings` if given, else the ones its manifest
    records (`features.settings`); either way checked against the features the model was trained on."""
    if settings is None:
        recorded = manifest.features.settings
        if recorded is None:
            raise ManifestError(
                f"the model's features ({manifest.features.video_embedder or 'unnamed'} embedder) were not made "
                "by the media front end, so its manifest records no front-end settings: extract features "
                "yourself and pass arrays, or pass the front end's FeatureSettings"
            )
        try:
            settings = front_end_module().FeatureSettings.from_dict(recorded)
        except (TypeError, ValueError) as err:
            raise ManifestError(f"features.settings are not the media front end's settings ({err})") from err
    check_settings(manifest, settings)
    return settings


def check_settings(manifest: Manifest, settings: Any) -> None:
    """Refuse front-end settings whose features differ from the ones the model was trained on."""
    wanted = manifest.features
    if settings.video_dim != wanted.video_dim:
        raise ManifestError(
            f"the front end's {settings.video_embedder!r} embedder makes {settings.video_dim}-dim video features, "
            f"the model expects {wanted.video_dim} ({wanted.video_embedder or 'unnamed'} embedder)"
        )
    if wanted.video_embedder is not None and settings.video_embedder != wanted.video_embedder:
        raise ManifestError(
            f"the front end embeds faces with {settings.video_embedder!r}, "
            f"the model was trained on {wanted.video_embedder!r}"
        )
    if wanted.video_weights is not None and settings.video_weights != wanted.video_weights:
        raise ManifestError(
            f"the front end's {settings.video_embedder!r} embedder runs weights {settings.video_weights}, "
            f"the model was trained on features of weights {wanted.video_weights}: another auxformer version "
            "made them; use that version, or train the model again on features from this one"
        )


class FrontEnd:
    """Media files -> ClipFeatures in this process, with the model's feature settings.

    Built on first use (so feature arrays never need the media packages); one extraction at a time,
    since the extractor's stages (openSMILE, OpenCV, its timers) are not meant for concurrent calls."""

    def __init__(self, manifest: Manifest, settings: Any = None):
        self.manifest = manifest
        self._given = settings
        self._settings: Any = None
        self._extractor: Any = None
        self._lock = threading.Lock()

    @property
    def settings(self) -> Any:
        """The FeatureSettings in use (checked against the manifest); resolved on first use."""
        if self._settings is None:
            self._settings = settings_for(self.manifest, self._given)
        return self._settings

    def __call__(self, path: str | Path, clip_id: str) -> ClipFeatures:
        with self._lock:
            if self._extractor is None:
                self._extractor = front_end_module().FeatureExtractor(self.settings)
            return self._extractor(path, clip_id)


def resolve(item: ClipInput, index: int, front_end: FrontEnd, video_dim: int) -> ClipFeatures:
    """One input as ClipFeatures. Files that fail become failed clips; arrays that break the feature
    contract raise FeatureError (the caller's bug, not the data's)."""
    if isinstance(item, ClipFeatures):
        return item
    if isinstance(item, Mapping):
        return from_arrays(item, f"clip{index}")
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if path.suffix.lower() in FEATURE_SUFFIXES:
            return load_npz(path)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ClipFeatures.failed(path.stem, image_reason(path), video_dim, str(path))
        if not path.is_file():
            return ClipFeatures.failed(path.stem, "no such file", video_dim, str(path))
        clip = front_end(path, path.stem)
        clip.info.setdefault("source", str(path))
        return clip
    raise TypeError(f"a clip is ClipFeatures, a mapping of arrays or a path, got {type(item).__name__}")
