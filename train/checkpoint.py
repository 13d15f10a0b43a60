"""Checkpoints: everything needed to rebuild a model without the training code's state.

A checkpoint holds the model name and config, weights (normalisation statistics included, as
buffers), the label list, the feature spec of the corpus it was trained on, length statistics (for
export shape profiles) and the run's provenance. Writes are atomic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from auxformer.common import atomic

from .config import ModelConfig
from .model import AuxFormer, build_model

FORMAT = "auxformer-checkpoint/1"
BEST = "checkpoint.pt"  # best dev loss: what export and evaluation use
LAST = "last.pt"  # end of the latest epoch, with optimiser and RNG state: what resume uses


class CheckpointError(ValueError):
    pass


def save(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic.atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def read(path: str | Path) -> dict[str, Any]:
    path = resolve(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a torn or foreign file: say which
        raise CheckpointError(f"{path} is not a readable checkpoint: {err}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an auxformer checkpoint (format {FORMAT})")
    return ckpt


def resolve(path: str | Path) -> Path:
    """A run folder means its best checkpoint."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    return path


def load_model(path: str | Path) -> tuple[AuxFormer, dict[str, Any]]:
    """Rebuild the model of a checkpoint (or run folder), in eval mode, with its metadata."""
    ckpt = read(path)
    model = build_model(ckpt["model_name"], ModelConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt
