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
from .stream.segments import StreamSettings
from .stream.source import SourceOptions

STREAM, SOURCE = StreamSettings(), SourceOptions()

EXIT_CODES = f"""Exit codes: 0 every file has a row (clips that could not be predicted say why in theirs);
1 no input files found; 2 bad usage or a model / front end that cannot run these clips;
3 --out refused before any work: not writable, full, in use by another run, or holding an earlier run's
rows without --resume; 4 writing to --out failed mid-run (the rows written before are kept: rerun with
--resume); 130 / 143 stopped by SIGINT / SIGTERM (the rows written so far are kept and {CSV} matches
them: rerun with --resume to finish); 5 (--timeline) the source stalled, dropped or could not be read
(the segments before are written, the last one says why)."""

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
        list[str],
        typer.Argument(
            help=f"clip files or folders (walked recursively for {', '.join(sorted(INPUT_SUFFIXES))}); "
            "every file named or found gets a row, saying why when it cannot be read. With --timeline: one "
            "source, a file of any length, an rtsp:// http(s):// udp:// URL, a FIFO, - (stdin) or a device",
            show_default=False,
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
    timeline: Annotated[
        bool,
        typer.Option(
            help="emotions over time: one SOURCE cut into overlapping windows, written to OUT/timeline.jsonl and "
            "timeline.csv as they come (live sources print them), then timeline.png"
        ),
    ] = False,
    window: Annotated[
        float | None,
        typer.Option(min=0.1, help="--timeline: window length, seconds (default: the model's typical training clip)"),
    ] = STREAM.window,
    hop: Annotated[
        float | None,
        typer.Option(min=0.05, help="--timeline: seconds between window starts (default: two thirds of the window)"),
    ] = STREAM.hop,
    overlay: Annotated[
        Path | None, typer.Option(help="--timeline on a file: also write this video, with the emotion drawn on it")
    ] = None,
    input_format: Annotated[
        str | None, typer.Option(help="--timeline: FFmpeg input format of a capture device (v4l2, alsa, dshow, ...)")
    ] = None,
    input_option: Annotated[
        list[str] | None, typer.Option(help="--timeline: FFmpeg input option KEY=VALUE (repeatable)")
    ] = None,
    stall_timeout: Annotated[
        float, typer.Option(min=0.1, help="--timeline: seconds without data before a source counts as stalled")
    ] = SOURCE.stall_timeout,
) -> None:
    """Find the clips under INPUTS, extract their features (worker pool, feature cache) while inference
    runs on the clips already extracted, and write one prediction row per file to OUT/predictions.jsonl
    and OUT/predictions.csv (path, label, probabilities, modalities present, status, timing)."""
    console = Console()
    if (model is None) == (engine is None):
        raise typer.BadParameter("give exactly one of --model model.onnx or --engine model.plan", param_hint="--model")
    load = {
        "path": model or engine,
        "backend": "onnxruntime" if model else "tensorrt",
        "device": device,
        "threads": threads,
        "memory": MemoryBudget(bytes=int(memory_gib * GIB) if memory_gib else None),
    }
    if timeline:
        if len(inputs) != 1:
            raise typer.BadParameter("--timeline takes one source", param_hint="INPUTS")
        source = SourceOptions(
            format=input_format,
            options=_key_values(input_option or []),
            stall_timeout=stall_timeout,
        )
        stream = StreamSettings(window=window, hop=hop, batch_size=batch_size, source=source)
        _timeline(console, inputs[0], out, load, stream, overlay, progress)
        return
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
            jobs, skipped = find_inputs([Path(i) for i in inputs])
            if not jobs:
                console.print(f"no clips found under {', '.join(map(str, inputs))} ({skipped} other files)")
                raise typer.Exit(1)
            try:
                folder = stack.enter_context(claim(out, resume))
            except OutputError as err:
                _exit(console, err, 3)
            session = _load(console, load)
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


def _load(console: Console, load: dict) -> Session:
    try:
        return Session.load(**load)
    except (ManifestError, MissingDependency, RunnerError, ValueError, FileNotFoundError) as err:
        _exit(console, err, 2)


def _key_values(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--input-option")
        out[key] = value
    return out


def _timeline(
    console: Console,
    source: str,
    out: Path,
    load: dict,
    settings: StreamSettings,
    overlay: Path | None,
    progress: bool,
) -> None:
    from .timeline_files import TIMELINE_JSONL
    from .timeline_run import run_timeline

    try:
        with interruptible(), contextlib.ExitStack() as stack:
            try:
                folder = stack.enter_context(claim(out))
                earlier = out / TIMELINE_JSONL
                if earlier.exists() and earlier.stat().st_size:
                    raise OutputError(f"--out {out} holds an earlier timeline ({TIMELINE_JSONL}): choose a new --out")
            except OutputError as err:
                _exit(console, err, 3)
            session = _load(console, load)
            stack.callback(session.close)
            console.print(f"timeline of {source}, model {session.name}")
            try:
                summary = run_timeline(session, source, folder.path, settings, console, overlay, progress)
            except (ManifestError, MissingDependency) as err:
                _exit(console, err, 2)
            except OutputError as err:
                _exit(console, err, 4)
    except Interrupted as stop:
        console.print(f"stopped by {stop}: the segments so far are in {out / TIMELINE_JSONL} and timeline.csv")
        raise typer.Exit(stop.exit_code) from None
    summary.print(console)
    if summary.ended:
        raise typer.Exit(5)


def _exit(console: Console, err: Exception, code: int) -> NoReturn:
    console.print(f"error: {err}")
    raise typer.Exit(code) from None


def main() -> None:
    app()
