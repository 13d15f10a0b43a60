"""The paper's protocol: N speaker-independent random splits, every model trained on the same splits.

Run i uses split seed and initialisation seed `seed + i` for every model and training mode, so the
results are paired by run. Each job (run x model x training) is an ordinary training run in
`OUT/runNN/<model>-<training>/`; a job whose `metrics.json` exists is done, an interrupted one resumes
from its `last.pt`. `results.csv` is rewritten after every finished job.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from auxformer.common import atomic

from .config import CLASSICAL_NAMES, MODEL_NAMES, RECIPES, ModelConfig, TrainConfig
from .run_metrics import CONDITIONS, METRICS_FILE, RunMetrics

UNIMODAL = ("audio_only", "video_only")
# models with no modality to drop: standard training only
STANDARD_ONLY = UNIMODAL + CLASSICAL_NAMES
RESULT_COLUMNS = ("run", "seed", "model", "training", "condition", "macro_f1", "micro_f1")


@dataclass(frozen=True)
class ProtocolConfig:
    runs: int = 20
    models: tuple[str, ...] = MODEL_NAMES
    trainings: tuple[str, ...] = ("standard", "optimized")
    # the training defaults, from the configs that own them
    epochs: int = TrainConfig.epochs
    layers: int = ModelConfig.num_layers
    batch_size: int = TrainConfig.batch_size
    recipe: str = RECIPES[0]  # the paper's: the Tables are reproduced with it
    seed: int = 0
    workers: int = 1
    device: str = "cpu"  # "cuda": jobs share out the GPUs (spread by a hash of the job's folder)
    model_overrides: dict[str, Any] = field(default_factory=dict)  # extra ModelConfig fields

    def __post_init__(self) -> None:
        unknown = set(self.models) - set(MODEL_NAMES + CLASSICAL_NAMES)
        if unknown:
            raise ValueError(
                f"unknown models {sorted(unknown)}; choose from {', '.join(MODEL_NAMES + CLASSICAL_NAMES)}"
            )
        if set(self.trainings) - {"standard", "optimized"}:
            raise ValueError("trainings must be standard and/or optimized")
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {', '.join(RECIPES)}; got {self.recipe!r}")
        if self.runs < 1 or self.workers < 1:
            raise ValueError("runs and workers must be >= 1")

    def identity(self) -> dict[str, Any]:
        """What must not change when a protocol is resumed (runs and workers may)."""
        return {k: v for k, v in asdict(self).items() if k not in ("runs", "workers", "device")}


@dataclass(frozen=True)
class Job:
    run: int
    model: str
    training: str
    seed: int

    @property
    def folder(self) -> str:
        return f"run{self.run:02d}/{self.model}-{self.training}"

    @property
    def name(self) -> str:
        return f"run {self.run + 1}: {self.model} ({self.training})"


def plan(cfg: ProtocolConfig) -> list[Job]:
    """Every run x model x training. A unimodal network has nothing to drop but its only modality,
    so it trains in standard mode only (it is the reference of the paper's Table 2); so does a
    classical model (it reads the audio's functionals only)."""
    return [
        Job(run, model, training, cfg.seed + run)
        for run in range(cfg.runs)
        for model in cfg.models
        for training in cfg.trainings
        if not (model in STANDARD_ONLY and training == "optimized")
    ]


def job_configs(cfg: ProtocolConfig, job: Job) -> tuple[TrainConfig, ModelConfig]:
    train = TrainConfig.recipe(
        cfg.recipe,
        model=job.model,
        training=job.training,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=job.seed,
        split_seed=job.seed,
    )
    return train, ModelConfig.recipe(cfg.recipe, **{"num_layers": cfg.layers, **cfg.model_overrides})


def run_job(corpus_root: str, cfg: ProtocolConfig, job: Job, out: str, threads: int) -> RunMetrics:
    """Train and evaluate one job (in this process or a worker); resumes an interrupted one."""
    import torch

    from auxformer.train.corpus import FeatureCorpus

    from .runs import build_run

    torch.set_num_threads(threads)
    train_cfg, model_cfg = job_configs(cfg, job)
    device = cfg.device
    if device == "cuda" and torch.cuda.device_count() > 1:
        device = f"cuda:{zlib.crc32(job.folder.encode()) % torch.cuda.device_count()}"
    trainer = build_run(
        FeatureCorpus.open(corpus_root),
        train_cfg,
        model_cfg,
        Path(out) / job.folder,
        console=Console(quiet=True),
        progress=False,
        device=device,
    )
    metrics = trainer.fit(resume=True)
    assert metrics is not None  # one process: it is the main one
    return metrics


def result_rows(job: Job, metrics: RunMetrics) -> list[dict[str, Any]]:
    rows = []
    for condition in CONDITIONS:
        r = metrics.condition(condition)
        rows.append(
            {
                "run": job.run,
                "seed": job.seed,
                "model": job.model,
                "training": job.training,
                "condition": condition,
                "macro_f1": r.macro_f1,
                "micro_f1": r.micro_f1,
                **{f"f1_{label}": f for label, f in r.per_class_f1.items()},
            }
        )
    return rows


def collect(out: Path, jobs: list[Job]) -> list[dict[str, Any]]:
    rows = []
    for job in jobs:
        if (out / job.folder / METRICS_FILE).is_file():
            rows += result_rows(job, RunMetrics.load(out / job.folder))
    return rows


def write_results(out: Path, rows: list[dict[str, Any]]) -> None:
    import csv
    import io

    columns = list(RESULT_COLUMNS) + sorted({k for r in rows for k in r} - set(RESULT_COLUMNS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(out / "results.csv", buf.getvalue())


def check_resumable(out: Path, cfg: ProtocolConfig, corpus_root: str) -> None:
    """A protocol folder belongs to one configuration; resuming with another would mix results."""
    path = out / "protocol.json"
    wanted = {"config": cfg.identity(), "corpus": str(Path(corpus_root).resolve())}
    if path.is_file():
        found = json.loads(path.read_text())
        if found != json.loads(json.dumps(wanted)):
            raise ValueError(f"{out} holds a protocol with another configuration or corpus; use a new --out")
    else:
        atomic.write_json(path, wanted)


def run_protocol(
    corpus_root: str | Path,
    cfg: ProtocolConfig,
    out: str | Path,
    console: Console | None = None,
    on_job: Callable[[Job], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every pending job (in `cfg.workers` processes), keep results.csv current, return all rows."""
    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_resumable(out, cfg, str(corpus_root))
    jobs = plan(cfg)
    pending = [j for j in jobs if not (out / j.folder / METRICS_FILE).is_file()]
    if len(pending) < len(jobs):
        console.print(f"resuming: {len(jobs) - len(pending)} of {len(jobs)} jobs already done")
    threads = max(1, (os.cpu_count() or 1) // cfg.workers)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("protocol", total=len(jobs), completed=len(jobs) - len(pending))

        def done(job: Job, metrics: RunMetrics) -> None:
            progress.advance(task)
            progress.console.print(
                f"run {job.run + 1} of {cfg.runs}  {job.model:<10} {job.training:<9} "
                f"test macro-F1 {metrics.test.macro_f1:.3f}"
            )
            write_results(out, collect(out, jobs))
            if on_job:
                on_job(job)

        if cfg.workers == 1:
            for job in pending:
                progress.update(task, description=job.name)
                done(job, run_job(str(corpus_root), cfg, job, str(out), threads))
        else:
            # spawn, not fork: a forked process inherits torch's thread pools in an unusable state
            with ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(run_job, str(corpus_root), cfg, j, str(out), threads): j for j in pending}
                progress.update(task, description=f"protocol ({cfg.workers} workers)")
                for future in as_completed(futures):
                    done(futures[future], future.result())
    rows = collect(out, jobs)
    write_results(out, rows)
    return rows
