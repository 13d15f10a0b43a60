"""The multitask loss: weighted cross-entropy of every head of the model."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import Batch
from .model import AuxFormer


def head_weight(weights: dict[str, float], head: str) -> float:
    # a unimodal network's main head takes the fusion head's weight
    return weights.get(head, weights.get("av", 1.0)) if head == "main" else weights.get(head, 0.0)


def multitask_loss(
    model: AuxFormer,
    heads: dict[str, torch.Tensor],
    batch: Batch,
    weights: dict[str, float],
    denominator: float | None = None,
    label_smoothing: float = 0.0,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted cross-entropy of every head, summed over clips and divided by `denominator` (default:
    the batch size). A head whose modalities are all missing for a clip (dropped or absent) gets no
    loss for that clip, since it has nothing to learn from. `class_weights` [C] scale each clip's
    loss by its class (class-balanced training); evaluation uses neither weights nor smoothing."""
    present = model.head_present({"audio": batch.audio_mask, "video": batch.video_mask})
    total = torch.zeros((), device=batch.labels.device)
    for name, logits in heads.items():
        ce = F.cross_entropy(
            logits, batch.labels, weight=class_weights, reduction="none", label_smoothing=label_smoothing
        )
        total = total + head_weight(weights, name) * (ce * present[name]).sum()
    return total / (denominator or len(batch.labels))


def balanced_class_weights(targets: list[int], num_classes: int) -> torch.Tensor:
    """n / (C * count) per class: every class weighs as much in the loss as a uniform share of clips."""
    counts = torch.bincount(torch.tensor(targets, dtype=torch.long), minlength=num_classes).to(torch.float32)
    return len(targets) / (num_classes * counts.clamp(min=1))
