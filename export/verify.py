"""Verification after every export: the exported model against PyTorch on the same inputs, both as
Runners (`auxformer.runtime.runner`): the exported side is the runtime's own onnxruntime or TensorRT
runner, so what is verified is the code that runs in production.

Per case: max |diff| over every output, top-1 agreement of the fused logits, non-finite outputs.
Pooled over all cases: agreement, and macro-F1 of each runner against the true labels. Thresholds
depend on the precision; a failed one names the case (and clips) that broke it. The report is saved
beside the model as JSON and printed as a rich table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from auxformer.calibration import int8
from auxformer.common import atomic
from auxformer.common.metrics import classification_report
from auxformer.runtime.profile import batch_shape
from auxformer.runtime.runner import Runner

from .cases import Case
from .onnx_export import ExportError

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class Thresholds:
    """None = reported, not enforced."""

    max_abs_diff: float | None = None  # every output of every case
    min_agreement: float | None = None  # top-1 agreement, pooled over all cases
    max_f1_delta: float | None = None  # |macro-F1(candidate) - macro-F1(reference)|, in F1 units (0.005 = 0.5 points)


THRESHOLDS: dict[str, Thresholds] = {
    "fp32": Thresholds(max_abs_diff=1e-4, min_agreement=1.0),
    "fp16": Thresholds(min_agreement=0.99, max_f1_delta=0.005),
    "int8": Thresholds(**int8.VERIFY_THRESHOLDS),  # set by the calibration package, which owns INT8
}


def thresholds_for(precision: str) -> Thresholds:
    if precision not in THRESHOLDS:
        raise ValueError(f"unknown precision {precision!r}")
    return THRESHOLDS[precision]


@dataclass
class CaseResult:
    name: str
    clips: int
    max_abs_diff: float
    worst_output: str
    agreement: float
    disagreeing: list[str]  # clip ids whose top-1 differs
    non_finite: list[str]  # outputs with NaN / inf from the candidate
    max_prob_diff: float = 0.0


@dataclass
class Report:
    model: str
    precision: str
    reference: str
    candidate: str
    features: str
    thresholds: Thresholds
    cases: list[CaseResult]
    agreement: float
    max_abs_diff: float
    macro_f1: dict[str, float | None]  # runner -> macro-F1 against the labels (None: unlabelled)
    f1_delta: float | None
    failures: list[str] = field(default_factory=list)
    max_prob_diff: float = 0.0  # of the `probs` output, over all cases
    speed: dict[str, Any] | None = None  # CPU latency against fp32 (reduced precisions)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def save(self, path: str | Path) -> Path:
        atomic.write_json(path, self.to_dict())
        return Path(path)

    def table(self) -> Table:
        t = self.thresholds
        limits = [
            f"max |diff| <= {t.max_abs_diff:.0e}" if t.max_abs_diff is not None else "",
            f"top-1 agreement >= {t.min_agreement:.0%}" if t.min_agreement is not None else "",
            f"|macro-F1 delta| <= {t.max_f1_delta * 100:g} points" if t.max_f1_delta is not None else "",
        ]
        verdict = "[green]passed[/]" if self.passed else "[red]FAILED[/]"
        table = Table(
            title=f"{Path(self.model).name} ({self.precision}) vs {self.reference}: {verdict}\n"
            f"thresholds: {', '.join(x for x in limits if x) or 'none (reported only)'}",
            caption=self._caption(),
            title_justify="left",
            caption_justify="left",
        )
        table.add_column("case", no_wrap=True)
        table.add_column("clips", justify="right")
        table.add_column("max |diff|", justify="right")
        table.add_column("worst output")
        table.add_column("top-1 agree", justify="right")
        for c in self.cases:
            too_far = t.max_abs_diff is not None and c.max_abs_diff > t.max_abs_diff
            diff = "non-finite" if c.non_finite else f"{c.max_abs_diff:.2e}"
            agree = f"{c.agreement:.1%}"
            table.add_row(
                c.name,
                str(c.clips),
                f"[red]{diff}[/]" if too_far or c.non_finite else diff,
                c.worst_output,
                agree if c.agreement == 1 else f"[yellow]{agree}[/]",
            )
        table.add_section()
        clips = sum(c.clips for c in self.cases)
        table.add_row("all cases", str(clips), f"{self.max_abs_diff:.2e}", "", f"{self.agreement:.2%}")
        return table

    def _caption(self) -> str:
        f1 = ", ".join(f"{k} {v:.4f}" if v is not None else f"{k} n/a" for k, v in self.macro_f1.items())
        delta = "n/a" if self.f1_delta is None else f"{self.f1_delta * 100:+.2f} points"
        speed = ""
        if self.speed and self.precision in self.speed:
            s = self.speed[self.precision]
            speed = (
                f"speed on this CPU (batch {self.speed['batch']}, 1 thread): {s['ms']:.1f} ms, "
                f"{s['speedup_vs_fp32']:.2f}x fp32\n"
            )
        return (
            f"macro-F1 (all cases): {f1}; delta {delta}; max |prob diff| {self.max_prob_diff:.2e}\n{speed}"
            f"clips: {self.features}, in padded batches; BxTaxTv: clips cut and padded to that shape"
        )


class Memo:
    """A runner whose outputs are computed once per feed dict: the PyTorch reference is shared by the
    fp32, fp16, int8 and engine verifications of one export."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.name, self.manifest, self.profile = runner.name, runner.manifest, runner.profile
        self.inputs, self.outputs = runner.inputs, runner.outputs
        self._seen: dict[int, tuple[Feeds, dict[str, np.ndarray]]] = {}

    def run(self, feeds: Feeds) -> dict[str, np.ndarray]:
        hit = self._seen.get(id(feeds))
        if hit is None or hit[0] is not feeds:  # the feeds are kept, so an id is never reused meanwhile
            hit = (feeds, self.runner.run(feeds))
            self._seen[id(feeds)] = hit
        return hit[1]

    def close(self) -> None:
        self._seen.clear()
        self.runner.close()


def runnable(cases: list[Case], *runners: Runner) -> list[Case]:
    """The batches of `cases` every runner's profile accepts (an engine refuses the others), dropping
    cases left empty."""

    def fits(feeds: Feeds) -> bool:
        return all(r.profile is None or r.profile.accepts(**batch_shape(feeds)) is None for r in runners)

    kept = [Case(c.name, [b for b in c.batches if fits(b.feeds)]) for c in cases]
    return [c for c in kept if c.batches]


def verify(
    reference: Runner,
    candidate: Runner,
    cases: list[Case],
    precision: str,
    model_path: str | Path,
    features: str,
    labelled: bool = True,
    thresholds: Thresholds | None = None,
) -> Report:
    """Run every case both runners' profiles accept through both, and judge the candidate by the
    precision's thresholds."""
    results, tops = [], []
    cases = runnable(cases, reference, candidate)
    if not cases:
        raise ExportError(
            f"{candidate.name}: none of the verification batches fit its profile ({candidate.profile.to_dict()}): "
            "build it with a larger profile (--max-batch, --max-audio-len, --max-video-len)"
        )
    for case in cases:
        result, case_tops = _compare(reference, candidate, case)
        results.append(result)
        tops += case_tops
    ref_top, got_top, y = (np.concatenate(column) for column in zip(*tops, strict=True))
    f1: dict[str, float | None] = {reference.name: None, candidate.name: None}
    known = y >= 0
    if labelled and known.any():
        names = [str(i) for i in range(int(max(y.max(), ref_top.max(), got_top.max())) + 1)]
        f1 = {
            reference.name: classification_report(y[known], ref_top[known], names)["macro_f1"],
            candidate.name: classification_report(y[known], got_top[known], names)["macro_f1"],
        }
    report = Report(
        model=str(model_path),
        precision=precision,
        reference=reference.name,
        candidate=candidate.name,
        features=features,
        thresholds=thresholds or thresholds_for(precision),
        cases=results,
        agreement=float((ref_top == got_top).mean()),
        max_abs_diff=max(r.max_abs_diff for r in results),
        max_prob_diff=max(r.max_prob_diff for r in results),
        macro_f1=f1,
        f1_delta=None if f1[candidate.name] is None else f1[candidate.name] - f1[reference.name],
    )
    report.failures = judge(report)
    return report


def _compare(
    reference: Runner, candidate: Runner, case: Case
) -> tuple[CaseResult, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """One case: its result row, and (reference top-1, candidate top-1, labels) per batch."""
    diff, worst, prob_diff, disagreeing, non_finite, tops = 0.0, "", 0.0, [], set(), []
    for batch in case.batches:
        expected, got = reference.run(batch.feeds), candidate.run(batch.feeds)
        for name, ref in expected.items():
            out = got[name]
            if out.shape != ref.shape:
                raise ValueError(f"{candidate.name}: output {name} has shape {out.shape}, expected {ref.shape}")
            if not np.isfinite(out).all():
                non_finite.add(name)
                continue
            d = float(np.abs(out.astype(np.float64) - ref).max())
            if name == "probs":
                prob_diff = max(prob_diff, d)
            if d >= diff:
                diff, worst = d, name
        ref_top, got_top = expected["logits"].argmax(1), got["logits"].argmax(1)
        disagreeing += [cid for cid, a, b in zip(batch.clip_ids, ref_top, got_top, strict=True) if a != b]
        tops.append((ref_top, got_top, batch.labels))
    agreement = 1 - len(disagreeing) / max(case.clips, 1)
    result = CaseResult(case.name, case.clips, diff, worst, agreement, disagreeing, sorted(non_finite), prob_diff)
    return result, tops


def judge(report: Report) -> list[str]:
    """One message per broken threshold, naming the case(s) and clips responsible."""
    t, failures = report.thresholds, []
    for c in report.cases:
        if c.non_finite:
            failures.append(f"case '{c.name}': non-finite values in {', '.join(c.non_finite)}")
        if t.max_abs_diff is not None and c.max_abs_diff > t.max_abs_diff:
            diff = f"max |diff| {c.max_abs_diff:.2e} in {c.worst_output}"
            failures.append(f"case '{c.name}': {diff} > {t.max_abs_diff:.0e}")
    if t.min_agreement is not None and report.agreement < t.min_agreement:
        culprits = [f"'{c.name}' ({', '.join(c.disagreeing[:5])})" for c in report.cases if c.disagreeing]
        failures.append(
            f"top-1 agreement {report.agreement:.2%} < {t.min_agreement:.0%}; disagreements in {'; '.join(culprits)}"
        )
    if t.max_f1_delta is not None and report.f1_delta is not None and abs(report.f1_delta) > t.max_f1_delta:
        failures.append(
            f"macro-F1 moved {report.f1_delta * 100:+.2f} points (limit {t.max_f1_delta * 100:.1f}) over all cases"
        )
    return failures
