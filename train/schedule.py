"""The optimiser and its learning-rate schedule: the paper's Adam with a plateau cut, or AdamW with a
linear warm-up then cosine decay per step.

One schedule object answers both moments a schedule may act at (after each optimiser step, after each
epoch's dev loss) and carries its state through a resume.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .config import SCHEDULES, TrainConfig


def build_optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> Schedule:
    return Schedule(
        optimizer,
        cfg.schedule,
        total_steps=steps_per_epoch * cfg.epochs,
        warmup_fraction=cfg.warmup_fraction,
        plateau_factor=cfg.plateau_factor,
        plateau_patience=cfg.plateau_patience,
    )


class Schedule:
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        kind: str,
        total_steps: int,
        warmup_fraction: float = 0.0,
        plateau_factor: float = 0.1,
        plateau_patience: int = 5,
        min_factor: float = 0.0,
    ):
        if kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {kind!r}")
        self.kind = kind
        self.scheduler: Any
        if kind == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=plateau_factor, patience=plateau_patience
            )
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, warmup_cosine(max(total_steps, 1), warmup_fraction, min_factor)
            )

    def after_step(self) -> None:
        if self.kind == "cosine":
            self.scheduler.step()

    def after_epoch(self, dev_loss: float) -> None:
        if self.kind == "plateau":
            self.scheduler.step(dev_loss)

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


def warmup_cosine(total_steps: int, warmup_fraction: float, min_factor: float = 0.0):
    """Factor of the base rate at step s: rises linearly to 1 over the warm-up, then follows half a
    cosine down to `min_factor` at `total_steps`."""
    warmup = round(warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
