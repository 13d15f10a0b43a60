"""`auxformer-train`: train on a feature corpus (or the demo), and the subcommands around it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from auxformer.train.feature_cli import prepare_command

from .config import (
    ATTENTION,
    BATCHING,
    CLASSICAL_NAMES,
    MODEL_NAMES,
    POOLING,
    PRECISIONS,
    PREDICTION_RULES,
    RECIPES,
    ClassicalConfig,
    ModelConfig,
    TrainConfig,
)
from .protocol import ProtocolConfig


class DefaultToFit(TyperGroup):
    """`auxformer-train [OPTIONS]` means `auxformer-train fit [OPTIONS]`; other subcommands stay."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["fit", *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """The subcommands, then the default command's own options (--corpus, --demo, --resume, ...), which
        `auxformer-train [OPTIONS]` takes and a user would otherwise only see under `fit --help`."""
        super().format_help(ctx, formatter)
        fit = self.commands["fit"]
        with fit.make_context(ctx.info_name, [], resilient_parsing=True) as fit_ctx:
            fit.format_help(fit_ctx, formatter)


app = typer.Typer(
    cls=DefaultToFit,
    help="Train AuxFormer and its baselines on a feature corpus (manifest.csv + .npz), or on the demo.\n\n"
    "`auxformer-train --demo` generates mp4 clips, extracts their features and trains, in minutes on a CPU.\n\n"
    "`auxformer-train prepare MEDIA --out FEATURES` turns a media corpus into a feature corpus.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# under torchrun only the first process talks
console = Console(quiet=os.environ.get("RANK", "0") != "0")

# Every default comes from the config dataclasses; the CLI only names the demo's departures from them.
TRAIN, MODEL, PROTOCOL, CLASSICAL = TrainConfig(), ModelConfig(), ProtocolConfig(), ClassicalConfig()
ALL_MODELS = MODEL_NAMES + CLASSICAL_NAMES
# The demo trades depth for speed so a CPU user sees the whole loop in minutes.
DEMO_LAYERS = 2
DEMO_EPOCHS = 5
# One torch thread: beside other work on a small CPU, OpenMP's spinning threads slow training ~10x.
DEMO_THREADS = 1


@app.command()
def fit(
    corpus: Annotated[Path | None, typer.Option(help="feature corpus folder (manifest.csv + .npz)")] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="generate demo mp4 clips, extract their features, train on them")
    ] = False,
    demo_features: Annotated[
        bool, typer.Option("--demo-features", help="train on a generated feature-level corpus (no media, fastest)")
    ] = False,
    out: Annotated[Path, typer.Option(help="run folder to write")] = Path("runs/latest"),
    model: Annotated[
        str,
        typer.Option(help=f"one of {', '.join(ALL_MODELS)} (functionals-linear: openSMILE + logistic regression)"),
    ] = TRAIN.model,
    recipe: Annotated[
        str, typer.Option(help="paper (the paper's training) | small-corpus (AdamW, cosine, masks, mean pooling)")
    ] = RECIPES[0],
    training: Annotated[str, typer.Option(help="standard | optimized (modality dropout)")] = TRAIN.training,
    dropout_per: Annotated[str, typer.Option(help="modality dropout drawn per sample | batch")] = TRAIN.dropout_per,
    epochs: Annotated[
        int | None, typer.Option(help=f"epochs (default {TRAIN.epochs}; demo {DEMO_EPOCHS})", show_default=False)
    ] = None,
    batch_size: Annotated[int, typer.Option(help="batch size")] = TRAIN.batch_size,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = TRAIN.lr,
    layers: Annotated[
        int | None,
        typer.Option(help=f"layers per encoder (default {MODEL.num_layers}; demo {DEMO_LAYERS})", show_default=False),
    ] = None,
    prediction: Annotated[str, typer.Option(help=f"head fusion: {' | '.join(PREDICTION_RULES)}")] = MODEL.prediction,
    pooling: Annotated[
        str | None,
        typer.Option(help=f"clip vector: {' | '.join(POOLING)} (default: the recipe's)", show_default=False),
    ] = None,
    authors_options: Annotated[bool, typer.Option(help="shared aux MLP + 3 tied aux passes")] = False,
    functionals: Annotated[
        str, typer.Option(help="functionals-linear: the corpus's openSMILE functional set it reads")
    ] = CLASSICAL.feature_set,
    seed: Annotated[int, typer.Option(help="seed of initialisation, shuffling and dropout")] = TRAIN.seed,
    split_seed: Annotated[int, typer.Option(help="seed of the speaker-independent split")] = TRAIN.split_seed,
    threads: Annotated[
        int, typer.Option(help=f"torch threads (0 = torch's default; demo {DEMO_THREADS})")
    ] = TRAIN.num_threads,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (under torchrun: one GPU per process)")] = "auto",
    precision: Annotated[
        str, typer.Option(help=f"{' | '.join(PRECISIONS)} (bf16: GPUs, CPUs with native bf16; fp16: GPUs)")
    ] = TRAIN.precision,
    attention: Annotated[
        str, typer.Option(help=f"{' | '.join(ATTENTION)} (explicit: the scores spelled out, slower)")
    ] = TRAIN.attention,
    batching: Annotated[
        str, typer.Option(help=f"{' | '.join(BATCHING)} (bucketed: clips of similar length together)")
    ] = TRAIN.batching,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Train one model and evaluate it on the test set (full, audio-only, video-only)."""
    from auxformer.train.corpus import CorpusError, FeatureCorpus

    from . import checkpoint
    from .checkpoint import CheckpointError
    from .distributed import pick_device
    from .precision import PrecisionError
    from .precision import check as check_precision
    from .report import print_summary
    from .runs import build_run

    if demo + demo_features + (corpus is not None) != 1:
        raise typer.BadParameter("give one of --corpus FOLDER, --demo or --demo-features")
    if resume and not (out / checkpoint.LAST).is_file():
        # checked before any work: a --resume that quietly started afresh would overwrite nothing but waste hours
        raise typer.BadParameter(
            f"there is no run to continue in {out} (no {checkpoint.LAST}); drop --resume to start a new run there",
            param_hint="--resume",
        )
    demo = demo or demo_features
    try:
        train_cfg = TrainConfig.recipe(
            recipe,
            model=model,
            training=training,
            dropout_per=dropout_per,
            epochs=epochs or (DEMO_EPOCHS if demo else TRAIN.epochs),
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            split_seed=split_seed,
            num_threads=threads or (DEMO_THREADS if demo else TRAIN.num_threads),
            precision=precision,
            attention=attention,
            batching=batching,
        )
        model_cfg = ModelConfig.recipe(
            recipe,
            num_layers=layers or (DEMO_LAYERS if demo else MODEL.num_layers),
            prediction=prediction,
            **({"pooling": pooling} if pooling else {}),
            **({"shared_aux_mlp": True, "aux_passes": 3} if authors_options else {}),
        )
        classical_cfg = ClassicalConfig(feature_set=functionals)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    try:  # before any work: the demo's media take minutes
        check_precision(precision, pick_device(device, int(os.environ.get("LOCAL_RANK", "0"))))
    except (PrecisionError, RuntimeError) as err:
        raise typer.BadParameter(str(err)) from err

    t0 = time.perf_counter()
    if demo_features:
        from .demo_corpus import generate

        with console.status("generating the demo corpus"):
            data = generate(out / "demo_corpus")
        console.print(f"demo corpus: {len(data)} clips, {len(data.speakers)} speakers -> {data.root}")
    elif demo:
        from .media_demo import run_media_demo

        data, _ = run_media_demo(out, console=console, progress=progress)
    else:
        data = FeatureCorpus.open(corpus)
    try:
        trainer = build_run(data, train_cfg, model_cfg, out, console, progress, device, classical_cfg)
    except CorpusError as err:
        _refuse(err)
    if model in CLASSICAL_NAMES:
        parts = trainer.partition_sizes
        what = f"openSMILE {classical_cfg.feature_set} functionals, L2 from {list(classical_cfg.l2_grid)} on dev"
    else:
        parts = trainer.info.partition_sizes
        what = f"{trainer.info.parameters / 1e6:.2f} M parameters, {model_cfg.num_layers} layers"
    console.print(
        f"[bold]{model}[/] ({what}), {training} training, {recipe} recipe; clips train/dev/test "
        f"{parts['train']}/{parts['dev']}/{parts['test']}"
    )
    try:
        metrics = trainer.fit(resume=resume)
    except (CheckpointError, CorpusError) as err:
        _refuse(err)
    if metrics is not None:  # the main process evaluates and reports
        print_summary(metrics, console, str(out))
    console.print(f"done in {time.perf_counter() - t0:.0f}s")


def _refuse(err: Exception) -> NoReturn:
    """A checkpoint this version will not read: its message, without a traceback."""
    console.print(f"[red]auxformer-train: {escape(str(err))}[/]")
    raise typer.Exit(1) from err


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@app.command()
def protocol(
    corpus: Annotated[Path | None, typer.Option(help="feature corpus folder")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="a small generated demo corpus (fast settings)")] = False,
    out: Annotated[Path, typer.Option(help="protocol folder (resumable)")] = Path("runs/protocol"),
    runs: Annotated[int, typer.Option(help="random speaker-independent splits")] = PROTOCOL.runs,
    models: Annotated[str, typer.Option(help="comma-separated models")] = ",".join(PROTOCOL.models),
    training: Annotated[str, typer.Option(help="comma-separated: standard,optimized")] = ",".join(PROTOCOL.trainings),
    epochs: Annotated[
        int | None,
        typer.Option(help=f"epochs per job (default {PROTOCOL.epochs}; demo {DEMO_EPOCHS})", show_default=False),
    ] = None,
    layers: Annotated[
        int | None,
        typer.Option(help=f"layers per encoder (default {PROTOCOL.layers}; demo {DEMO_LAYERS})", show_default=False),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="batch size")] = PROTOCOL.batch_size,
    recipe: Annotated[str, typer.Option(help="paper (the Tables) | small-corpus")] = PROTOCOL.recipe,
    seed: Annotated[int, typer.Option(help="run i uses seed + i for its split and initialisation")] = PROTOCOL.seed,
    workers: Annotated[
        int, typer.Option(help="parallel training processes (threads are shared out)")
    ] = PROTOCOL.workers,
    device: Annotated[str, typer.Option(help="cpu | cuda (jobs share out the GPUs) | cuda:N")] = PROTOCOL.device,
) -> None:
    """The paper's protocol: N random speaker-independent splits, every model on the same splits;
    writes results.csv, summary.md (Tables 1-2 layout with paired t-tests), robustness.png, boxplot.png."""
    from rich.markdown import Markdown

    from auxformer.train.corpus import FeatureCorpus

    from .checkpoint import CheckpointError
    from .protocol import run_protocol
    from .protocol_report import claims, write_report

    if demo == (corpus is not None):
        raise typer.BadParameter("give either --corpus FOLDER or --demo")
    try:
        cfg = ProtocolConfig(
            runs=runs,
            models=_csv(models),
            trainings=_csv(training),
            epochs=epochs or (DEMO_EPOCHS if demo else PROTOCOL.epochs),
            layers=layers or (DEMO_LAYERS if demo else PROTOCOL.layers),
            batch_size=batch_size,
            recipe=recipe,
            seed=seed,
            workers=workers,
            device=device,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    t0 = time.perf_counter()
    if demo:
        from .demo_corpus import PROTOCOL_DEMO, generate

        corpus = generate(out / "demo_corpus", PROTOCOL_DEMO).root
    data = FeatureCorpus.open(corpus)
    console.print(
        f"protocol: {cfg.runs} runs x {len(cfg.models)} models x {len(cfg.trainings)} trainings on "
        f"{len(data)} clips ({len(data.speakers)} speakers) -> {out}"
    )
    try:
        rows = run_protocol(data.root, cfg, out, console)
    except CheckpointError as err:
        _refuse(err)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    write_report(out, rows, title=f"Protocol on {data.root}")
    console.print(Markdown("\n".join(claims(rows))))
    console.print(
        f"wrote {out / 'results.csv'}, {out / 'summary.md'}, {out / 'robustness.png'}, "
        f"{out / 'boxplot.png'} in {time.perf_counter() - t0:.0f}s"
    )


# `auxformer-train prepare`: media corpus -> feature corpus (torch-free, lives with the runtime)
app.command("prepare")(prepare_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
