"""Feature cache keyed by file content and feature settings.

The key hashes the file's bytes (not its name or time stamp: a renamed or copied clip still hits,
an edited one misses) together with the feature settings, the content of any weights files they
name, the versions of the packages that compute features, and the cache format. A hit gives back
the clip's arrays, status and reason without decoding. Entries are written atomically, so parallel
workers and interrupted runs never leave a torn entry. Failed clips are not cached: a failure is
cheap to find again, and may be the machine's, not the file's.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
from pathlib import Path

import numpy as np

from auxformer.common import atomic

from .contracts import FUNCTIONALS, INPUTS, ClipFeatures, Status
from .features import FeatureSettings
from .hashing import cache_root, file_digest

FORMAT = "auxformer-feature-cache/1"


def default_cache_dir() -> Path:
    return cache_root() / "features"


# packages whose upgrades can change features: an upgrade starts a fresh cache
VERSIONED = ("auxformer", "av", "opensmile", "opencv-python-headless", "onnxruntime", "numpy")


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


# settings that change how features are computed, not what they are (weights count by content below)
NOT_IN_KEY = ("threads", "providers", "vggface_weights", "ssd_prototxt", "ssd_model")


class FeatureCache:
    def __init__(self, root: str | Path, settings: FeatureSettings, functionals: tuple[str, ...] = ()):
        self.root = Path(root)
        kept = {k: v for k, v in settings.to_dict().items() if k not in NOT_IN_KEY}
        described = {"format": FORMAT, "settings": kept, "versions": _versions()}
        if settings.video_weights:  # the shipped weights count by content too: a new model file makes new features
            described["video_weights"] = settings.video_weights
        if functionals:  # entries with functionals are other entries (and without, keys stay as they were)
            described["functionals"] = sorted(functionals)
        # weights are named by path in the settings: key on what the files hold
        for name in ("vggface_weights", "ssd_prototxt", "ssd_model"):
            value = getattr(settings, name)
            if value and Path(value).is_file():
                described[f"{name}_content"] = file_digest(value)
        self.salt = hashlib.blake2b(json.dumps(described, sort_keys=True).encode(), digest_size=16).digest()

    def key(self, path: str | Path) -> str:
        return file_digest(path, self.salt)

    def key_or_none(self, path: str | Path) -> str | None:
        """The file's key, or None when it cannot be read (extraction will say why)."""
        try:
            return self.key(path)
        except OSError:
            return None

    def _entry(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str, path: str | Path, clip_id: str) -> ClipFeatures | None:
        try:
            entry = self._entry(key)
            if not entry.is_file():
                return None
            with np.load(entry, allow_pickle=False) as data:
                arrays = {k: data[k] for k in INPUTS}
                functionals = {k[len(FUNCTIONALS) :]: data[k] for k in data.files if k.startswith(FUNCTIONALS)}
                meta = json.loads(str(data["meta"]))
            info = {**meta["info"], "cached": True, "source": str(path)}
            return ClipFeatures(
                clip_id,
                **arrays,
                status=Status(meta["status"]),
                reason=meta["reason"],
                info=info,
                functionals=functionals,
            )
        except Exception:  # a damaged entry of any kind (torn zip, odd metadata): extract again
            return None

    def put(self, key: str, clip: ClipFeatures) -> None:
        if not clip.status.usable:
            return
        meta = json.dumps({"status": clip.status.value, "reason": clip.reason, "info": clip.info}, default=str)
        buf = io.BytesIO()
        extra = {FUNCTIONALS + k: v for k, v in clip.functionals.items()}
        np.savez(buf, **clip.arrays(), **extra, meta=np.array(meta))
        with contextlib.suppress(OSError):  # a full disk or read-only cache costs speed, never the clip
            atomic.write_bytes(self._entry(key), buf.getvalue())
