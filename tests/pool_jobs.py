"""Tiny importable jobs for process-pool tests (spawned workers import them by module name)."""

from __future__ import annotations

import os


def square_or_die(x: int) -> int:
    """Kills its process on negative input, as a decoder crashing on a hostile file would."""
    if x < 0:
        os._exit(3)
    return x * x


def crashed(x: int) -> str:
    return f"crashed on {x}"


def slow_first(x: int) -> int:
    """Job 0 takes a while, the others are instant: results wait behind it."""
    if x == 0:
        import time

        time.sleep(1.5)
    return x


def nap(x: int) -> int:
    """A job long enough to be in flight when the test does something to the pool's owner."""
    import time

    time.sleep(0.3)
    return x * x


def hang(x: int) -> int:
    """A job that outlasts any test: its worker is busy when the pool's owner dies."""
    import time

    time.sleep(120)
    return x
