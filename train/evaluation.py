"""Evaluating a model on a set of clips, with a modality optionally removed from every clip."""

from __future__ import annotations

import torch

from auxformer.common.metrics import classification_report

from .data import ClipDataset
from .loss import multitask_loss
from .model import AuxFormer
from .run_metrics import Evaluation, HeadScores, Outputs


@torch.no_grad()
def evaluate(
    model: AuxFormer,
    dataset: ClipDataset,
    labels: list[str],
    weights: dict[str, float],
    batch_size: int,
    missing: str | None = None,
) -> Evaluation:
    """Loss and metrics of the fused prediction and of each head, with `missing` removed."""
    model.eval()
    device = next(model.parameters()).device
    fused, heads, targets, loss_sum = [], {}, [], 0.0
    for batch in dataset.loader(batch_size):
        batch = batch.without(missing).to(device)
        out = model(*batch.inputs())
        loss_sum += float(multitask_loss(model, out.heads, batch, weights)) * len(batch.labels)
        fused.append(out.logits.cpu())
        for name, logits in out.heads.items():
            heads.setdefault(name, []).append(logits.cpu())
        targets.append(batch.labels.cpu())
    y = torch.cat(targets).numpy()
    logits = torch.cat(fused).numpy()
    head_logits = {name: torch.cat(h).numpy() for name, h in heads.items()}
    report = classification_report(y, logits.argmax(1), labels)
    head_scores = {}
    for name, h in head_logits.items():
        r = classification_report(y, h.argmax(1), labels)
        head_scores[name] = HeadScores(macro_f1=r["macro_f1"], micro_f1=r["micro_f1"])
    return Evaluation(
        **report,
        loss=loss_sum / len(y),
        heads=head_scores,
        outputs=Outputs(logits=logits, head_logits=head_logits, targets=y),
    )
