"""Figures of a run: confusion matrix and training curves (PNG, written atomically)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

# save_figure is re-exported: the trainer and the protocol report save through `plots`
from auxformer.common.figures import pyplot
from auxformer.common.figures import save_figure as save_figure


def confusion_matrix_figure(cm: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> Any:
    """Row-normalised colours (recall per true class) with the raw counts written in each cell."""
    plt = pyplot()
    cm = np.asarray(cm, dtype=float)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.7 * len(labels)))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticklabels(labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}",
                ha="center",
                va="center",
                color="white" if rates[i, j] > 0.5 else "black",
                fontsize=8,
            )
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    return fig


def training_curves_figure(history: Sequence[dict[str, float]], best_epoch: int | None) -> Any:
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["dev_loss"] for h in history], "o-", label="dev")
    ax_loss.set(xlabel="epoch", ylabel="loss (weighted CE of all heads)", title="Loss")
    ax_f1.plot(epochs, [h["dev_macro_f1"] for h in history], "o-", color="C2", label="dev macro-F1")
    ax_f1.set(xlabel="epoch", ylabel="macro-F1", title="Dev macro-F1", ylim=(0, 1))
    for ax in (ax_loss, ax_f1):
        ax.xaxis.get_major_locator().set_params(integer=True)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", ls="--", lw=1, label="best dev loss")
        ax.grid(alpha=0.3)
        ax.legend()
    lr_changes = [h["epoch"] for prev, h in itertools.pairwise(history) if h["lr"] < prev["lr"]]
    for e in lr_changes:
        ax_loss.annotate("lr x0.1", (e, ax_loss.get_ylim()[1]), fontsize=7, ha="center", va="top")
    fig.tight_layout()
    return fig


def reliability_figure(sets: dict[str, tuple[np.ndarray, np.ndarray]], temperature: float) -> Any:
    """Accuracy against confidence per bin (diagonal = calibrated), before and after temperature
    scaling, one row per set of (logits, labels): the set T was fitted on and the held-out one."""
    from auxformer.calibration.temperature import expected_calibration_error, reliability
    from auxformer.common.metrics import softmax

    plt = pyplot()
    fig, axes = plt.subplots(len(sets), 2, figsize=(9, 3.6 * len(sets)), sharey=True, squeeze=False)
    for row, (set_name, (logits, labels)) in zip(axes, sets.items(), strict=True):
        for ax, t, when in ((row[0], 1.0, "before"), (row[1], temperature, f"after (T = {temperature:.2f})")):
            probs = softmax(logits / t)
            r = reliability(probs, labels)
            centres = [(a + b) / 2 for a, b in itertools.pairwise(r.edges)]
            shown = [c > 0 for c in r.count]
            ax.bar(
                [c for c, s in zip(centres, shown, strict=True) if s],
                [a for a, s in zip(r.accuracy, shown, strict=True) if s],
                width=(r.edges[1] - r.edges[0]) * 0.9,
                edgecolor="C0",
                alpha=0.7,
                label="accuracy",
            )
            ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
            ece = expected_calibration_error(probs, labels)
            ax.set(xlabel="confidence", title=f"{set_name}, {when}: ECE {ece:.3f}", xlim=(0, 1), ylim=(0, 1))
            ax.grid(alpha=0.3)
        row[0].set_ylabel("accuracy")
    axes[0][1].legend(loc="upper left")
    fig.tight_layout()
    return fig
