"""The protocol: paired splits, resumption, parallel workers, t-test direction, table layout."""

from __future__ import annotations

import math

import pytest

from auxformer.train.protocol import Job, ProtocolConfig, plan, run_protocol
from auxformer.train.protocol_report import load_results, paired_ttest, summary_markdown, write_report

from .conftest import TINY


def _cfg(**kw) -> ProtocolConfig:
    base = dict(
        runs=2,
        models=("auxformer", "baseline1"),
        trainings=("standard", "optimized"),
        epochs=1,
        batch_size=16,
        model_overrides=TINY,
    )
    return ProtocolConfig(**{**base, **kw})


def test_plan_pairs_models_on_the_same_seeds():
    jobs = plan(_cfg(runs=3, models=("auxformer", "baseline1", "video_only")))
    by_run: dict[int, set[int]] = {}
    for j in jobs:
        by_run.setdefault(j.run, set()).add(j.seed)
    assert all(len(seeds) == 1 for seeds in by_run.values())
    assert len({next(iter(s)) for s in by_run.values()}) == 3
    # unimodal networks train in standard mode only
    assert not any(j.model == "video_only" and j.training == "optimized" for j in jobs)
    assert len(jobs) == 3 * (2 + 2 + 1)


def test_protocol_runs_pairs_and_resumes(small_demo, tmp_path):
    ran: list[Job] = []
    cfg = _cfg()
    rows = run_protocol(small_demo.root, cfg, tmp_path, on_job=ran.append)
    assert len(ran) == len(plan(cfg)) == 8
    assert len(rows) == 8 * 3  # three test conditions per job
    # every model of a run saw exactly the same split
    for run in (0, 1):
        splits = {p.read_text() for p in (tmp_path / f"run{run:02d}").glob("*/splits.csv")}
        assert len(splits) == 1
    assert (tmp_path / "run00/auxformer-standard/splits.csv").read_text() != (
        tmp_path / "run01/auxformer-standard/splits.csv"
    ).read_text()
    assert len(load_results(tmp_path / "results.csv")) == 24

    # an interrupted protocol: one job lost its result -> only that job runs again
    (tmp_path / "run01/baseline1-optimized/metrics.json").unlink()
    ran.clear()
    run_protocol(small_demo.root, cfg, tmp_path, on_job=ran.append)
    assert [(j.run, j.model, j.training) for j in ran] == [(1, "baseline1", "optimized")]

    # more runs later: only the new run trains
    ran.clear()
    run_protocol(small_demo.root, _cfg(runs=3), tmp_path, on_job=ran.append)
    assert {j.run for j in ran} == {2} and len(ran) == 4

    with pytest.raises(ValueError, match="another configuration"):
        run_protocol(small_demo.root, _cfg(epochs=2), tmp_path)

    write_report(tmp_path, load_results(tmp_path / "results.csv"))
    for name in ("summary.md", "robustness.png", "boxplot.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_parallel_workers_give_the_same_results(small_demo, tmp_path):
    cfg = _cfg(runs=1, models=("baseline1",), trainings=("standard", "optimized"))
    serial = run_protocol(small_demo.root, cfg, tmp_path / "serial")
    parallel = run_protocol(small_demo.root, ProtocolConfig(**{**cfg.__dict__, "workers": 2}), tmp_path / "par")
    key = lambda r: (r["run"], r["model"], r["training"], r["condition"])  # noqa: E731
    assert sorted(serial, key=key) == sorted(parallel, key=key)


def _rows(aux: list[float], other: list[float], model: str = "baseline1"):
    rows = []
    for name, values in (("auxformer", aux), (model, other)):
        for run, v in enumerate(values):
            rows.append(
                {
                    "run": run,
                    "model": name,
                    "training": "standard",
                    "condition": "full",
                    "macro_f1": v,
                    "micro_f1": v + 0.01,
                }
            )
    return rows


def test_ttest_direction():
    better, worse = [0.70, 0.72, 0.69, 0.74, 0.71], [0.60, 0.64, 0.62, 0.63, 0.61]
    as_map = lambda xs: dict(enumerate(xs))  # noqa: E731
    assert paired_ttest(as_map(better), as_map(worse)) < 0.001
    assert paired_ttest(as_map(worse), as_map(better)) > 0.999
    assert math.isnan(paired_ttest(as_map(better[:1]), as_map(worse[:1])))  # one run: undefined


def test_summary_table_layout_and_marks():
    md = summary_markdown(_rows([0.70, 0.72, 0.69, 0.73], [0.60, 0.64, 0.62, 0.62]))
    assert "## Table 1 layout — standard training, full test condition" in md
    table = md.split("## Table 1 layout — standard training, full test condition")[1].split("##")[0]
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert lines[0] == "| model | micro-F1 | macro-F1 | p micro (ref >) | p macro (ref >) |"
    assert lines[2] == "| AuxFormer | 0.720 ± 0.018 | 0.710 ± 0.018 | n/a | n/a |"
    assert lines[3].startswith("| Baseline 1 (no aux nets) | 0.630 ± 0.016 * | 0.620 ± 0.016 * |")
    assert "AuxFormer >= Baseline 1" in md and "**holds**" in md
    reverse = summary_markdown(_rows([0.60, 0.64, 0.62, 0.62], [0.70, 0.72, 0.69, 0.73]))
    assert "*" not in reverse.split("## Table 1 layout")[1].split("##")[0].replace("**", "")
    assert "**does NOT hold**" in reverse
