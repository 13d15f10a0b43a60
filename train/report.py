"""The terminal summary of a run: one table a person reads at the end of training."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .run_metrics import CONDITION_NAMES, RunMetrics, condition_key


def summary_table(metrics: RunMetrics) -> Table:
    """Test conditions as columns, metrics as rows: narrow enough for an 80-column log."""
    conditions = [
        (metrics.evaluations[condition_key(c)], name)
        for c, name in CONDITION_NAMES.items()
        if condition_key(c) in metrics.evaluations
    ]
    table = Table(
        title=f"{metrics.model} ({metrics.training} training), test set, best epoch {metrics.best_epoch}",
        title_justify="left",
    )
    table.add_column("test condition")
    for _, name in conditions:
        table.add_column(name, justify="right")
    table.add_row("macro-F1", *(f"[bold]{e.macro_f1:.3f}[/]" for e, _ in conditions))
    table.add_row("micro-F1", *(f"{e.micro_f1:.3f}" for e, _ in conditions), end_section=True)
    for label in metrics.labels:
        table.add_row(f"F1 {label}", *(f"{e.per_class_f1[label]:.2f}" for e, _ in conditions), style="dim")
    return table


def print_summary(metrics: RunMetrics, console: Console, run_dir: str) -> None:
    console.print(summary_table(metrics))
    heads = metrics.test.heads
    if len(heads) > 1:
        console.print(
            "heads on the full test set: " + ", ".join(f"{name} macro-F1 {h.macro_f1:.3f}" for name, h in heads.items())
        )
    cal = metrics.calibration
    if cal:
        dev = cal.scores["dev"]
        console.print(
            f"temperature scaling: T = {cal.temperature:.2f}, dev ECE {dev['ece_before']:.3f} -> "
            f"{dev['ece_after']:.3f}, dev NLL {dev['nll_before']:.3f} -> {dev['nll_after']:.3f}"
        )
    chance = 1 / len(metrics.labels)
    console.print(
        f"chance macro-F1 ~ {chance:.3f}; run folder: [bold]{run_dir}[/] "
        "(metrics.json, confusion_matrix.png, training_curves.png, reliability.png, checkpoint.pt)"
    )
