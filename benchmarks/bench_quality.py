"""Quality on real speech: leave-one-speaker-out on EmoDB, the classical baseline beside the networks.

    python benchmarks/bench_quality.py EMODB_FOLDER                 # `just bench-quality EMODB_FOLDER`
    python benchmarks/bench_quality.py EMODB_FOLDER --epochs 5 --folds 2      # a quick look
    python benchmarks/bench_quality.py EMODB_FOLDER --size paper --recipe small-corpus --train lr=3e-4

One fold per speaker: that speaker is the test set, the next one (sorted) the dev set (early stopping,
the baseline's penalty), the rest train. Rows: the classical baseline (openSMILE functionals + L2
logistic regression, once per functional set), `audio_only`, and `auxformer` with the video absent
(EmoDB has none). The networks train through the project's own training API with the default
`TrainConfig` / `ModelConfig` of the named `--recipe` (paper by default), changed only by `--size`,
`--epochs`, `--config` (a JSON file `{"train": {...}, "model": {...}}`) and `--train` / `--model`
KEY=VALUE options, so a change of the defaults shows here. `--size small` (the default) is a narrower,
shallower network (d_model 64, 4 heads, 2 layers): a step of 32 EmoDB clips costs it about 0.5 CPU-s
against 8.5 for the paper's size, which cannot train 5 folds x 2 networks in the benchmark's 20 minutes
on a 2-core CPU; `--size paper` is the paper's network. Features (LLDs and functionals) are extracted
once into `OUT/features`, through the feature cache. Writes `OUT/results.json` and `OUT/results.md`;
each run's folder is under `OUT/runs`.
"""

from __future__ import annotations

import os

# one thread per process unless asked: beside other work, OpenMP's spinning threads slow training
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import ast  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, fields  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from auxformer.common import atomic  # noqa: E402
from auxformer.runtime.media.functionals import FEATURE_SETS  # noqa: E402
from auxformer.train.config import CLASSICAL_NAMES, RECIPES, ClassicalConfig, ModelConfig, TrainConfig  # noqa: E402
from auxformer.train.corpora import open_media_corpus  # noqa: E402
from auxformer.train.corpus import CorpusError, FeatureCorpus  # noqa: E402
from auxformer.train.prepare import prepare  # noqa: E402
from auxformer.train.runs import build_run  # noqa: E402
from auxformer.train.splits import leave_one_speaker_out  # noqa: E402

NETWORKS = ("audio_only", "auxformer")
SIZES = {"small": {"d_model": 64, "num_heads": 4, "num_layers": 2}, "paper": {}}
BASELINE = CLASSICAL_NAMES[0]


@dataclass(frozen=True)
class Row:
    """One model on one fold."""

    name: str  # the table's row label
    model: str
    feature_set: str | None = None  # the baseline's functionals


def parse_overrides(items: list[str], cls: type) -> dict[str, Any]:
    """KEY=VALUE options for a config dataclass; values are Python literals (or plain strings)."""
    known = {f.name for f in fields(cls)}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise SystemExit(f"{item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def features(source: Path, out: Path, cache: Path, workers: int, console: Console) -> FeatureCorpus:
    """The feature corpus of `source` with every functional set, extracted once (reused when present)."""
    try:
        corpus = FeatureCorpus.open(out)
        if set(corpus.functional_sets) >= set(FEATURE_SETS):
            console.print(f"features: reusing {out} ({len(corpus)} clips)")
            return corpus
    except CorpusError:
        pass
    media = open_media_corpus(source)
    console.print(f"{media.name}: {len(media)} clips, {len(media.speakers)} speakers; extracting features -> {out}")
    summary = prepare(media, out, workers=workers, cache_dir=cache, console=console, functionals=FEATURE_SETS)
    for line in summary.lines():
        console.print(line)
    return FeatureCorpus.open(out)


def fold_table(title: str, results: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column, justify in (("model", "left"), ("macro-F1", "right"), ("micro-F1", "right"), ("seconds", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in results:
        table.add_row(r["row"], f"{r['macro_f1']:.3f}", f"{r['micro_f1']:.3f}", f"{r['seconds']:.0f}")
    return table


def summarise(results: list[dict[str, Any]], rows: list[Row]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        mine = [r for r in results if r["row"] == row.name]
        if not mine:
            continue

        def stat(key: str, values: list[dict[str, Any]] = mine) -> tuple[float, float]:
            xs = [v[key] for v in values]
            return statistics.fmean(xs), statistics.pstdev(xs)

        out.append(
            {
                "row": row.name,
                "folds": len(mine),
                "macro_f1": stat("macro_f1"),
                "micro_f1": stat("micro_f1"),
                "seconds": sum(r["seconds"] for r in mine),
            }
        )
    return out


def markdown(per_fold: list[dict[str, Any]], means: list[dict[str, Any]], header: list[str]) -> str:
    lines = [*header, "", "| model | macro-F1 | micro-F1 | seconds (all folds) |", "|---|---|---|---|"]
    for m in means:
        lines.append(
            f"| {m['row']} | {m['macro_f1'][0]:.3f} ± {m['macro_f1'][1]:.3f} | "
            f"{m['micro_f1'][0]:.3f} ± {m['micro_f1'][1]:.3f} | {m['seconds']:.0f} |"
        )
    lines += ["", "Per fold (test speaker / dev speaker):", "", "| fold | model | macro-F1 | micro-F1 | seconds |"]
    lines.append("|---|---|---|---|---|")
    for r in per_fold:
        lines.append(
            f"| {r['test_speaker']} / {r['dev_speaker']} | {r['row']} | {r['macro_f1']:.3f} | "
            f"{r['micro_f1']:.3f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="EmoDB folder (its wav/ folder or the .wav files)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-quality"), help="output folder")
    parser.add_argument("--cache", type=Path, help="feature cache (default OUT/feature_cache)")
    parser.add_argument("--epochs", type=int, help=f"epochs per network (default TrainConfig's, {TrainConfig.epochs})")
    parser.add_argument("--folds", type=int, help="only the first N folds (a quick look)")
    parser.add_argument("--models", default=",".join(NETWORKS), help="networks, comma-separated")
    parser.add_argument("--baseline-sets", default=",".join(FEATURE_SETS), help="functional sets for the baseline")
    parser.add_argument("--recipe", default=RECIPES[0], choices=RECIPES, help="training recipe of the networks")
    parser.add_argument("--size", default="small", choices=tuple(SIZES), help="network size (see above)")
    parser.add_argument("--config", type=Path, help='JSON file {"train": {...}, "model": {...}} of config overrides')
    parser.add_argument("--train", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig override")
    parser.add_argument("--model", action="append", default=[], metavar="KEY=VALUE", help="ModelConfig override")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per network")
    parser.add_argument("--workers", type=int, default=0, help="feature extraction processes (0: one per core)")
    args = parser.parse_args()
    console = Console()
    t_start = time.perf_counter()

    config = json.loads(args.config.read_text()) if args.config else {}
    train_overrides = {**config.get("train", {}), **parse_overrides(args.train, TrainConfig)}
    model_overrides = {**SIZES[args.size], **config.get("model", {}), **parse_overrides(args.model, ModelConfig)}
    if args.epochs:
        train_overrides["epochs"] = args.epochs
    rows = [Row(f"{BASELINE} ({fs})", BASELINE, fs) for fs in args.baseline_sets.split(",") if fs]
    rows += [Row(m, m) for m in args.models.split(",") if m]

    corpus = features(args.data, args.out / "features", args.cache or args.out / "feature_cache", args.workers, console)
    folds = leave_one_speaker_out(corpus.entries)[: args.folds]
    header = [
        f"# Leave-one-speaker-out on {corpus.metadata.get('source', {}).get('name', args.data.name)}",
        "",
        f"{len(corpus)} clips, {len(corpus.speakers)} speakers, {len(folds)} folds (test speaker; the next speaker "
        f"is dev, the rest train). Networks: the {args.recipe} recipe, {args.size} size, with the overrides "
        f"train {json.dumps(train_overrides)}, model {json.dumps(model_overrides)}; {args.threads} torch thread(s).",
    ]
    console.print(header[-1])
    per_fold: list[dict[str, Any]] = []
    for k, (test, dev, entries) in enumerate(folds, 1):
        fold = FeatureCorpus(corpus.root, entries, corpus.metadata)
        results = []
        for row in rows:
            console.print(f"fold {k}/{len(folds)} (test {test}, dev {dev}): {row.name} ...")
            train_cfg = TrainConfig.recipe(
                args.recipe, **{**train_overrides, "model": row.model, "num_threads": args.threads}
            )
            run = build_run(
                fold,
                train_cfg,
                ModelConfig.recipe(args.recipe, **model_overrides),
                args.out / "runs" / f"test-{test}" / row.name.replace(" ", "").replace("(", "-").replace(")", ""),
                console=Console(quiet=True),
                progress=False,
                device="cpu",
                classical_cfg=ClassicalConfig(feature_set=row.feature_set) if row.feature_set else None,
            )
            t0 = time.perf_counter()
            metrics = run.fit()
            assert metrics is not None  # one process: the main one
            result = {
                "fold": k,
                "test_speaker": test,
                "dev_speaker": dev,
                "row": row.name,
                "model": row.model,
                "macro_f1": metrics.test.macro_f1,
                "micro_f1": metrics.test.micro_f1,
                "per_class_f1": metrics.test.per_class_f1,
                "best_epoch": metrics.best_epoch,
                "seconds": time.perf_counter() - t0,
            }
            results.append(result)
            console.print(
                f"  macro-F1 {result['macro_f1']:.3f}  micro-F1 {result['micro_f1']:.3f}  {result['seconds']:.0f}s"
            )
        per_fold += results
        console.print(fold_table(f"fold {k}: test speaker {test}, dev speaker {dev}", results))
    means = summarise(per_fold, rows)
    table = Table(title=f"mean over {len(folds)} folds", title_justify="left")
    for column in ("model", "macro-F1", "micro-F1", "seconds (all folds)"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for m in means:
        table.add_row(
            m["row"],
            f"{m['macro_f1'][0]:.3f} ± {m['macro_f1'][1]:.3f}",
            f"{m['micro_f1'][0]:.3f} ± {m['micro_f1'][1]:.3f}",
            f"{m['seconds']:.0f}",
        )
    console.print(table)
    total = time.perf_counter() - t_start
    header.append(f"Total wall time {total:.0f} s (features included).")
    report = {
        "corpus": str(corpus.root.resolve()),
        "train_overrides": train_overrides,
        "model_overrides": model_overrides,
        "threads": args.threads,
        "folds": per_fold,
        "mean": means,
        "seconds": total,
    }
    atomic.write_json(args.out / "results.json", report)
    atomic.write_text(args.out / "results.md", markdown(per_fold, means, header))
    console.print(f"total {total:.0f} s; wrote {args.out / 'results.json'} and {args.out / 'results.md'}")


if __name__ == "__main__":
    main()
