"""Input discovery for `auxformer-infer`: the paths on the command line -> one job per input file.

Every path named on the command line gets exactly one job, and so does every media, feature (`.npz`)
or image file found in a folder; a job either can be processed or carries the reason it cannot (its
row says so): a missing path, a symlink loop or a dangling link, a directory named like a media file,
an image, a file that cannot be opened, a folder that cannot be listed, something that is not a
regular file. Other files found in folders (notes, CSVs, hidden names) are counted and passed over:
folders hold more than clips, and a row per stray file would bury the clips' rows.

Folders are walked recursively in name order; symlinked folders are followed, each real folder once
(tracked by (st_dev, st_ino)), so a link back to an ancestor cannot loop, and a file reached twice
(named twice, or through two links) gets one row. Clip ids are paths relative to the folder named
(unique, unlike stems, and never climbing out of it: the walk joins names, never `..`); a repeated id
gets a `#n` suffix.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .clip_inputs import FEATURE_SUFFIXES
from .contracts import IMAGE_SUFFIXES, MEDIA_SUFFIXES, image_reason

INPUT_SUFFIXES = MEDIA_SUFFIXES | set(FEATURE_SUFFIXES)
# names that announce a clip: found in a folder, they get a row even when they cannot be read
_CLIP_LIKE = INPUT_SUFFIXES | IMAGE_SUFFIXES


@dataclass
class Job:
    index: int
    path: Path
    clip_id: str
    reason: str | None = None  # why this input cannot be processed (its row says so); None: process it

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def media(self) -> bool:
        """A readable file for the media front end (not a `.npz` of features)."""
        return self.ok and self.path.suffix.lower() not in FEATURE_SUFFIXES


def find_inputs(paths: list[Path]) -> tuple[list[Job], int]:
    """One job per input under `paths` (see the module docstring), in order; and how many other files
    found in folders were passed over."""
    walk = _Walk()
    for root in paths:
        walk.named(Path(root))
    return walk.jobs, walk.skipped


class _Walk:
    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.skipped = 0
        self._seen: set[tuple[int, int]] = set()  # real files and folders already given a row or walked
        self._ids: set[str] = set()

    def named(self, path: Path) -> None:
        """A path from the command line: always a row, unless it is a folder (its files get theirs)."""
        name = path.name if path.name not in ("", ".", "..") else f"input{len(self.jobs)}"
        problem, st = _stat(path)
        if st is None:
            self._add(path, name, problem)
        elif stat.S_ISDIR(st.st_mode) and path.suffix.lower() not in _CLIP_LIKE:
            if self._first(st):
                self._walk(path, path)
        else:
            self._file(path, name, st)

    def _walk(self, root: Path, folder: Path) -> None:
        try:
            with os.scandir(folder) as it:
                names = sorted(e.name for e in it)
        except OSError as err:
            self._add(folder, self._id(root, folder), f"cannot list this folder: {err.strerror or err}")
            return
        for name in names:
            if name.startswith("."):
                continue
            path = folder / name
            problem, st = _stat(path)
            if st is None:  # a loop or dangling link: we cannot tell what it was, so it gets a row
                self._add(path, self._id(root, path), problem)
            elif stat.S_ISDIR(st.st_mode) and path.suffix.lower() not in _CLIP_LIKE:
                if self._first(st):
                    self._walk(root, path)
            elif path.suffix.lower() in _CLIP_LIKE:
                self._file(path, self._id(root, path), st)
            else:
                self.skipped += 1

    def _file(self, path: Path, clip_id: str, st: os.stat_result) -> None:
        if not self._first(st):
            return
        suffix = path.suffix.lower()
        if stat.S_ISDIR(st.st_mode):
            reason = f"a directory, not a {'feature' if suffix in FEATURE_SUFFIXES else 'media'} file"
        elif not stat.S_ISREG(st.st_mode):
            reason = "not a regular file (a device, pipe or socket)"
        elif suffix in IMAGE_SUFFIXES:
            reason = image_reason(path)
        elif suffix not in INPUT_SUFFIXES:
            reason = f"not a media or feature file ({suffix or 'no suffix'}; reads {', '.join(sorted(INPUT_SUFFIXES))})"
        else:
            reason = _unreadable(path)
        self._add(path, clip_id, reason)

    def _first(self, st: os.stat_result) -> bool:
        key = (st.st_dev, st.st_ino)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def _id(self, root: Path, path: Path) -> str:
        return path.relative_to(root).as_posix()

    def _add(self, path: Path, clip_id: str, reason: str | None) -> None:
        unique, n = clip_id, 1
        while unique in self._ids:
            n += 1
            unique = f"{clip_id}#{n}"
        self._ids.add(unique)
        self.jobs.append(Job(len(self.jobs), path, unique, reason))


def _stat(path: Path) -> tuple[str, None] | tuple[None, os.stat_result]:
    """(None, its stat with links followed), or (why it cannot be reached, None)."""
    try:
        return None, path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symlink loop (the link leads back to itself)", None
        if path.is_symlink():
            return "a broken symlink (its target does not exist)", None
        if err.errno == errno.ENOENT:
            return "no such file or directory", None
        return f"cannot be read: {err.strerror or err}", None


def _unreadable(path: Path) -> str | None:
    """Why a regular file cannot be opened for reading (permissions, I/O), or None."""
    try:
        with open(path, "rb"):
            return None
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
