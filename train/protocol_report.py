"""Tables and figures of a protocol, in the layout of the paper's Tables 1 and 2 and Fig. 2.

Significance: one-tailed paired t-test (scipy `ttest_rel(..., alternative="greater")`) over runs,
AuxFormer against each other model, p < 0.05 marked with `*` on the model AuxFormer beats.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.common import atomic
from auxformer.common.optional import require

from . import plots
from .run_metrics import CONDITION_NAMES

NAMES = {
    "auxformer": "AuxFormer",
    "baseline1": "Baseline 1 (no aux nets)",
    "mult": "Baseline 2 (MulT)",
    "audio_only": "Audio-only network",
    "video_only": "Video-only network",
    "functionals-linear": "openSMILE functionals + logistic regression",
}
ALPHA = 0.05
# The paper's Tables 1 and 2 (micro, macro): a reference for real corpora, not for the demo.
PAPER = {
    "table1": {
        "auxformer": {"IMPROV": (0.765, 0.704), "CREMA-D": (0.717, 0.713)},
        "baseline1": {"IMPROV": (0.742, 0.669), "CREMA-D": (0.649, 0.641)},
        "mult": {"IMPROV": (0.737, 0.666), "CREMA-D": (0.614, 0.604)},
    },
    "table2": {
        "AuxFormer (video only)": {"IMPROV": (0.721, 0.598), "CREMA-D": (0.531, 0.513)},
        "Video-only network": {"IMPROV": (0.736, 0.652), "CREMA-D": (0.510, 0.493)},
        "AuxFormer (audio only)": {"IMPROV": (0.624, 0.519), "CREMA-D": (0.587, 0.578)},
        "Audio-only network": {"IMPROV": (0.617, 0.539), "CREMA-D": (0.582, 0.574)},
    },
}


def load_results(path: str | Path) -> list[dict[str, Any]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["run"] = int(r["run"])
        for k in list(r):
            if k in ("macro_f1", "micro_f1") or k.startswith("f1_"):
                r[k] = float(r[k])
    return rows


def scores(rows: Iterable[dict[str, Any]], model: str, training: str, condition: str, metric: str) -> dict[int, float]:
    """{run: score} for one model, training mode and test condition."""
    return {
        r["run"]: r[metric]
        for r in rows
        if r["model"] == model and r["training"] == training and r["condition"] == condition
    }


def paired_ttest(better: dict[int, float], worse: dict[int, float]) -> float:
    """One-tailed paired t-test p-value for mean(better) > mean(worse) over shared runs (nan if undefined)."""
    runs = sorted(set(better) & set(worse))
    if len(runs) < 2:
        return math.nan
    a, b = np.array([better[r] for r in runs]), np.array([worse[r] for r in runs])
    if np.allclose(a - b, (a - b)[0]):  # no variance in the differences: the t statistic is undefined
        return math.nan
    stats = require("scipy.stats")
    return float(stats.ttest_rel(a, b, alternative="greater").pvalue)


def _cell(values: dict[int, float], marked: bool) -> str:
    if not values:
        return "—"
    v = np.array(list(values.values()))
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}{' *' if marked else ''}"


def _p(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.3g}"


def comparison_table(
    rows: list[dict[str, Any]], entries: list[tuple[str, str, str, str]], reference: tuple[str, str, str] | None
) -> list[str]:
    """Markdown rows: (label, model, training, condition) per entry; each tested against `reference`."""
    lines = ["| model | micro-F1 | macro-F1 | p micro (ref >) | p macro (ref >) |", "|---|---|---|---|---|"]
    for label, model, training, condition in entries:
        micro = scores(rows, model, training, condition, "micro_f1")
        macro = scores(rows, model, training, condition, "macro_f1")
        if reference and (model, training, condition) != reference:
            p_micro = paired_ttest(scores(rows, *reference, "micro_f1"), micro)
            p_macro = paired_ttest(scores(rows, *reference, "macro_f1"), macro)
        else:
            p_micro = p_macro = math.nan
        lines.append(
            f"| {label} | {_cell(micro, p_micro < ALPHA)} | {_cell(macro, p_macro < ALPHA)} "
            f"| {_p(p_micro)} | {_p(p_macro)} |"
        )
    return lines


def _present(rows: list[dict[str, Any]], key: str) -> list[str]:
    return list(dict.fromkeys(r[key] for r in rows))


def claims(rows: list[dict[str, Any]]) -> list[str]:
    """The paper's qualitative claims, checked on these results."""
    out = []

    def mean(model: str, training: str, condition: str) -> float | None:
        s = scores(rows, model, training, condition, "macro_f1")
        return float(np.mean(list(s.values()))) if s else None

    aux, b1 = mean("auxformer", "standard", "full"), mean("baseline1", "standard", "full")
    if aux is not None and b1 is not None:
        verdict = "holds" if aux >= b1 else "does NOT hold"
        p = paired_ttest(
            scores(rows, "auxformer", "standard", "full", "macro_f1"),
            scores(rows, "baseline1", "standard", "full", "macro_f1"),
        )
        out.append(
            f"- AuxFormer >= Baseline 1, full condition, standard training (macro-F1 {aux:.3f} vs "
            f"{b1:.3f}, one-tailed p = {_p(p)}): **{verdict}**."
        )
    for condition in ("audio_only", "video_only"):
        opt, std = mean("auxformer", "optimized", condition), mean("auxformer", "standard", condition)
        if opt is not None and std is not None:
            verdict = "holds" if opt > std else "does NOT hold"
            p = paired_ttest(
                scores(rows, "auxformer", "optimized", condition, "macro_f1"),
                scores(rows, "auxformer", "standard", condition, "macro_f1"),
            )
            out.append(
                f"- Optimized beats standard training for AuxFormer tested {CONDITION_NAMES[condition]} "
                f"(macro-F1 {opt:.3f} vs {std:.3f}, one-tailed p = {_p(p)}): **{verdict}**."
            )
    return out or ["- (the models needed to check the paper's claims were not part of this protocol)"]


def summary_markdown(rows: list[dict[str, Any]], title: str = "Protocol results") -> str:
    runs = sorted({r["run"] for r in rows})
    models, trainings = _present(rows, "model"), _present(rows, "training")
    lines = [
        f"# {title}",
        "",
        f"{len(runs)} speaker-independent random splits (runs), mean ± std over runs. `*`: AuxFormer is "
        f"better with p < {ALPHA} (one-tailed paired t-test over runs, scipy `ttest_rel`); p columns test "
        "the reference row (AuxFormer) > that row.",
        "",
    ]
    fusion = [m for m in models if m not in ("audio_only", "video_only")]
    for training in trainings:
        lines += [f"## Table 1 layout — {training} training, full test condition", ""]
        lines += comparison_table(
            rows,
            [(NAMES.get(m, m), m, training, "full") for m in fusion],
            ("auxformer", training, "full") if "auxformer" in models else None,
        )
        lines.append("")
    if "auxformer" in models:
        aux_training = "optimized" if "optimized" in trainings else trainings[0]
        lines += [
            f"## Table 2 layout — AuxFormer {aux_training} training with one modality removed at test, "
            "against unimodal networks",
            "",
        ]
        for kept, removed_condition in (("video", "video_only"), ("audio", "audio_only")):
            entries = [(f"AuxFormer ({kept} only)", "auxformer", aux_training, removed_condition)]
            if f"{kept}_only" in models:
                entries.append((NAMES[f"{kept}_only"], f"{kept}_only", "standard", "full"))
            lines += comparison_table(rows, entries, ("auxformer", aux_training, removed_condition))
            lines.append("")
    lines += [
        "## Robustness (Fig. 2): macro-F1 per test condition",
        "",
        "| model | training | " + " | ".join(CONDITION_NAMES.values()) + " |",
        "|---|---|" + "---|" * len(CONDITION_NAMES),
    ]
    for m in models:
        for t in trainings:
            # a unimodal network tested without its only modality predicts nothing: leave it blank
            cells = [
                "—"
                if m.endswith("_only") and c.endswith("_only") and c != m
                else _cell(scores(rows, m, t, c, "macro_f1"), False)
                for c in CONDITION_NAMES
            ]
            if any(c != "—" for c in cells):
                lines.append(f"| {NAMES.get(m, m)} | {t} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## The paper's qualitative claims on these results",
        "",
        *claims(rows),
        "",
        "## The paper's figures (for reference; real corpora only)",
        "",
        "| | IMPROV micro | IMPROV macro | CREMA-D micro | CREMA-D macro |",
        "|---|---|---|---|---|",
    ]
    for key, table in (("Table 1", PAPER["table1"]), ("Table 2", PAPER["table2"])):
        for name, v in table.items():
            label = NAMES.get(name, name)
            lines.append(
                f"| {key}: {label} | {v['IMPROV'][0]:.3f} | {v['IMPROV'][1]:.3f} | "
                f"{v['CREMA-D'][0]:.3f} | {v['CREMA-D'][1]:.3f} |"
            )
    return "\n".join(lines) + "\n"


def robustness_figure(rows: list[dict[str, Any]]) -> Any:
    """Grouped bars like the paper's Fig. 2: standard vs optimized training per test condition."""
    plt = plots.pyplot()
    models = [m for m in _present(rows, "model") if m not in ("audio_only", "video_only")]
    trainings = _present(rows, "training")
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False, sharey=True)
    x = np.arange(len(CONDITION_NAMES))
    width = 0.8 / len(trainings)
    for ax, model in zip(axes[0], models, strict=True):
        for k, training in enumerate(trainings):
            vals = [list(scores(rows, model, training, c, "macro_f1").values()) for c in CONDITION_NAMES]
            means = [np.mean(v) if v else 0 for v in vals]
            errs = [np.std(v, ddof=1) if len(v) > 1 else 0 for v in vals]
            ax.bar(x + (k - (len(trainings) - 1) / 2) * width, means, width, yerr=errs, capsize=3, label=training)
        ax.set(xticks=x, title=NAMES.get(model, model), ylim=(0, 1))
        ax.set_xticklabels(CONDITION_NAMES.values())
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("test macro-F1")
    axes[0][-1].legend(title="training")
    fig.tight_layout()
    return fig


def boxplot_figure(rows: list[dict[str, Any]]) -> Any:
    """Per-model macro-F1 over runs (full test condition), one box per model and training mode."""
    plt = plots.pyplot()
    groups = [
        (m, t)
        for m in _present(rows, "model")
        for t in _present(rows, "training")
        if scores(rows, m, t, "full", "macro_f1")
    ]
    data = [list(scores(rows, m, t, "full", "macro_f1").values()) for m, t in groups]
    fig, ax = plt.subplots(figsize=(1.3 * len(groups) + 2, 3.8))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(groups) + 1))
    ax.set_xticklabels([f"{NAMES.get(m, m)}\n{t}" for m, t in groups], rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="test macro-F1 (full condition)", title="Macro-F1 over runs")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def write_report(out: str | Path, rows: list[dict[str, Any]], title: str = "Protocol results") -> None:
    out = Path(out)
    atomic.write_text(out / "summary.md", summary_markdown(rows, title))
    plots.save_figure(robustness_figure(rows), out / "robustness.png")
    plots.save_figure(boxplot_figure(rows), out / "boxplot.png")
