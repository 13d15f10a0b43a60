"""`auxformer-infer CLIPS... --model model.onnx | --engine model.plan`: predictions for a folder of clips."""

from __future__ import annotations

import contextlib
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from auxformer.common.optional import MissingDependency

from .bounds import GIB, MemoryBudget
from .infer import InferOptions, run
from .inputs import INPUT_SUFFIXES, find_inputs
from .interrupt import Interrupted, interruptible
from .manifest import ManifestError
from .out_folder import claim
from .results import CSV, JSONL, OutputError
from .runner import DEVICES_HELP, RunnerError
from .session import DEFAULT_BATCH_SIZE, Session

EXIT_CODES = f"""Exit codes: 0 every file has a row (clips that could not be predicted say why in theirs);
1 no input files found; 2 bad usage or a model / front end that cannot run these clips;
3 --out refused before any work: not writable, full, in use by another run, or holding an earlier run's
rows without --resume; 4 writing to --out failed mid-run (the rows written before are kept: rerun with
--resume); 130 / 143 stopped by SIGINT / SIGTERM (the rows written so far are kept and {CSV} matches
them: rerun with --resume to finish)."""

app = typer.Typer(
    help="Batched emotion recognition on video and audio clips with an exported AuxFormer.",
    add_completion=False,
)


class Modality(str, Enum):
    audio = "audio"
    video = "video"


@app.command(epilog=EXIT_CODES)
def infer(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help=f"clip files or folders (walked recursively for {', '.join(sorted(INPUT_SUFFIXES))}); "
            "every file named or found gets a row, saying why when it cannot be read",
        ),
    ],
    model: Annotated[Path | None, typer.Option(help="an exported model.onnx (onnxruntime)")] = None,
    engine: Annotated[Path | None, typer.Option(help="a TensorRT model.plan (with model.plan.json beside it)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="clips per inference batch")] = DEFAULT_BATCH_SIZE,
    workers: Annotated[int, typer.Option(min=0, help="feature extraction processes (0: one per core)")] = 0,
    missing: Annotated[
        Modality | None, typer.Option(help="remove this modality from every clip (robustness checks)")
    ] = None,
    out: Annotated[
        Path, typer.Option(help=f"folder for {JSONL} (appended batch by batch) and {CSV}; locked for the run")
    ] = Path("predictions"),
    resume: Annotated[
        bool, typer.Option(help=f"keep the rows already in OUT/{JSONL} and predict only the files without one")
    ] = False,
    device: Annotated[str, typer.Option(help=DEVICES_HELP)] = "auto",
    threads: Annotated[int, typer.Option(min=0, help="onnxruntime intra-op threads (0: its default)")] = 0,
    memory_gib: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            help="memory one batch may take, estimated (default: half of this machine's memory); "
            "a clip that alone needs more is failed with the limit in its reason",
        ),
    ] = None,
    cache: Annotated[bool, typer.Option(help="reuse features of files seen before (keyed by content)")] = True,
    cache_dir: Annotated[Path | None, typer.Option(help="feature cache folder (default: the user cache)")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Find the clips under INPUTS, extract their features (worker pool, feature cache) while inference
    runs on the clips already extracted, and write one prediction row per file to OUT/predictions.jsonl
    and OUT/predictions.csv (path, label, probabilities, modalities present, status, timing)."""
    console = Console()
    if (model is None) == (engine is None):
        raise typer.BadParameter("give exactly one of --model model.onnx or --engine model.plan", param_hint="--model")
    options = InferOptions(
        batch_size=batch_size,
        workers=workers,
        missing=missing.value if missing else None,
        cache=cache,
        cache_dir=cache_dir,
        resume=resume,
    )
    try:
        with interruptible(), contextlib.ExitStack() as stack:
            jobs, skipped = find_inputs(inputs)
            if not jobs:
                console.print(f"no clips found under {', '.join(map(str, inputs))} ({skipped} other files)")
                raise typer.Exit(1)
            try:
                folder = stack.enter_context(claim(out, resume))
            except OutputError as err:
                _exit(console, err, 3)
            try:
                session = Session.load(
                    model or engine,  # type: ignore[arg-type]
                    backend="onnxruntime" if model else "tensorrt",
                    device=device,
                    threads=threads,
                    memory=MemoryBudget(bytes=int(memory_gib * GIB) if memory_gib else None),
                )
            except (ManifestError, MissingDependency, RunnerError, ValueError, FileNotFoundError) as err:
                _exit(console, err, 2)
            stack.callback(session.close)
            console.print(f"{len(jobs)} clips ({skipped} other files skipped), model: {session.name}")
            bar = Progress(
                TextColumn("{task.description:>12}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                disable=not progress,
            )
            tasks = {stage: bar.add_task(stage, total=len(jobs)) for stage in ("extracted", "predicted")}
            with bar:
                try:
                    summary = run(session, jobs, folder, options, lambda stage, n: bar.advance(tasks[stage], n))
                except (ManifestError, MissingDependency) as err:
                    _exit(console, err, 2)
                except OutputError as err:
                    _exit(console, err, 4)
    except Interrupted as stop:
        console.print(
            f"stopped by {stop}: the rows written so far are in {out / JSONL} and {CSV}; rerun with --resume to finish"
        )
        raise typer.Exit(stop.exit_code) from None
    summary.print(console)


def _exit(console: Console, err: Exception, code: int) -> NoReturn:
    console.print(f"error: {err}")
    raise typer.Exit(code) from None


def main() -> None:
    app()
