"""matplotlib, imported only when a figure is asked for, and figures saved as PNG atomically.

Training plots and the runtime's timeline plot both draw through here: the runtime must run without
matplotlib until someone asks it for a picture.
"""

from __future__ import annotations

import os
from typing import Any

from . import atomic
from .optional import require


def pyplot() -> Any:
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 120, tight: bool = True) -> None:
    """Write `fig` as a PNG to `path` (a reader sees the old file or the whole new one) and close it.

    `tight` crops the canvas to what is drawn; without it the image is exactly the figure's size
    times `dpi`."""
    try:
        with atomic.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    finally:
        pyplot().close(fig)
