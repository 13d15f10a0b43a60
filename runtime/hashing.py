"""Content digests of files and the user cache folder (feature cache, converted models)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def file_digest(path: str | Path, salt: bytes = b"", size: int = 20) -> str:
    """Hex blake2b of the file's bytes, keyed by `salt`; read in 4 MiB chunks so big files stream."""
    h = hashlib.blake2b(key=salt[:64], digest_size=size)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_root() -> Path:
    """$AUXFORMER_CACHE, else ~/.cache/auxformer."""
    return Path(os.environ.get("AUXFORMER_CACHE") or Path.home() / ".cache" / "auxformer")
