"""The output folder of an `auxformer-infer` run, claimed before any work starts: created, locked for the
run, checked writable and checked for an earlier run's rows.

The lock is `fcntl.flock` on `OUT/.lock`: a second run into the same folder is refused while the first
holds it, and the kernel releases it when its holder dies, so a killed run never leaves a stale lock.
(Worker processes are spawned, so they do not inherit the lock's descriptor.) Writability is tested by
writing and syncing a probe file, so a read-only, full or missing disk is refused now, not after every
clip has been extracted and predicted."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .results import JSONL, OutputError, read_rows

try:
    import fcntl
except ImportError:  # not POSIX: runs go unlocked
    fcntl = None  # type: ignore[assignment]

LOCK, PROBE = ".lock", ".probe"
_PROBE_BYTES = 64 * 1024  # enough to need fresh blocks on a disk that is full
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass
class OutFolder:
    """A claimed output folder; `resume`: append to the rows already in it."""

    path: Path
    resume: bool
    rows: list[dict[str, Any]] = field(default_factory=list)  # the log's rows when claimed (resume)
    size: int = 0  # bytes of the log's complete lines when claimed


def _refusal(path: Path, err: OSError) -> OutputError:
    if err.errno in _FULL:
        why = f"the disk is full ({err.strerror})"
    elif err.errno in (errno.ENOTDIR, errno.EEXIST):
        why = "it is not a folder (or a file is in its path)"
    else:
        why = err.strerror or str(err)
    return OutputError(f"cannot write to --out {path}: {why}; nothing was done")


def _probe(path: Path) -> None:
    probe = path / f"{PROBE}-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * _PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _lock(path: Path) -> int:
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise OutputError(
            f"--out {path} is in use by another auxformer-infer run{pid}: wait for it to end or choose another --out"
        ) from None
    except OSError:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    except OSError:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def claim(path: Path, resume: bool = False) -> Iterator[OutFolder]:
    """Hold `path` for one run. Raises OutputError, before anything is written but the lock and a probe,
    when the folder cannot be made or written, is locked by another run, or holds an earlier run's
    rows and `resume` is not set."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = _lock(path)
    except OSError as err:
        raise _refusal(path, err) from err
    try:
        try:
            _probe(path)
        except OSError as err:
            raise _refusal(path, err) from err
        rows, size = read_rows(path / JSONL)
        if not resume and rows:
            raise OutputError(
                f"--out {path} holds an earlier run's predictions ({len(rows)} rows in {JSONL}): "
                "pass --resume to finish that run, or choose a new --out"
            )
        # without rows to keep, a torn line left by a killed run (all `size` can hold then) is cut off
        yield OutFolder(path, resume, rows, size) if resume else OutFolder(path, resume)
    finally:
        os.close(fd)  # releases the lock
