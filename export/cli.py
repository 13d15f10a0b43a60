"""`auxformer-export RUN_OR_CHECKPOINT [--out DIR] [--fp16] [--int8 --calib FEATURES] [--opset N] [--triton DIR]`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

EXIT_CODES = """Exit codes: 0 exported and verified (and the engine built, if asked);
1 verification failed (the message names the case and clips);
2 bad options;
3 exported and verified, but TensorRT or a GPU is missing here, so no engine;
4 export failed (unreadable checkpoint, a fixed axis or forbidden op in the graph,
TensorRT rejected the model)."""

app = typer.Typer(
    help="Export a trained AuxFormer to ONNX (and fp16 / int8 ONNX, a TensorRT engine, a Triton repository), "
    "verifying every exported model against PyTorch.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
LONGEST = "(default: the longest training clip, rounded up to 16)"


@app.command(epilog=EXIT_CODES)
def export(
    run: Annotated[Path, typer.Argument(metavar="RUN_OR_CHECKPOINT", help="run folder or checkpoint.pt")],
    out: Annotated[Path | None, typer.Option(help="output folder (default: exports/<run name>)")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="also write model.fp16.onnx and build an fp16 engine")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="also write the Q/DQ model.int8.onnx (needs --calib)")] = False,
    calib: Annotated[Path | None, typer.Option(help="feature corpus for INT8 calibration")] = None,
    calib_clips: Annotated[int, typer.Option(help="INT8 calibration clips (stratified by label and length)")] = 512,
    calib_method: Annotated[str, typer.Option(help="INT8 ranges: minmax | entropy | percentile")] = "minmax",
    trt_calibrator: Annotated[
        bool, typer.Option("--trt-calibrator", help="TensorRT < 10 only: implicit INT8 calibration (entropy)")
    ] = False,
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 17)")] = 18,
    triton: Annotated[Path | None, typer.Option(help="write a Triton model repository here")] = None,
    features: Annotated[
        Path | None, typer.Option(help="feature corpus to verify on (default: the run's dev + test clips)")
    ] = None,
    max_clips: Annotated[int, typer.Option(help="clips to verify on, at most")] = 512,
    engine: Annotated[bool, typer.Option(help="build a TensorRT engine for --fp16 / --int8")] = True,
    max_batch: Annotated[int | None, typer.Option(help="profile max batch (default: 32)")] = None,
    opt_batch: Annotated[int | None, typer.Option(help="profile opt batch (default: 8)")] = None,
    max_audio_len: Annotated[int | None, typer.Option(help=f"profile max audio frames {LONGEST}")] = None,
    max_video_len: Annotated[int | None, typer.Option(help=f"profile max video frames {LONGEST}")] = None,
    workspace_gib: Annotated[float, typer.Option(help="TensorRT workspace limit, GiB")] = 4.0,
    timing_cache: Annotated[Path | None, typer.Option(help="TensorRT timing cache file (read and updated)")] = None,
    version_compatible: Annotated[
        bool, typer.Option("--version-compatible", help="engine runs on later TensorRT versions")
    ] = False,
    hardware_compatible: Annotated[
        bool, typer.Option("--hardware-compatible", help="engine runs on any Ampere-or-newer GPU")
    ] = False,
    face_weights: Annotated[Path | None, typer.Option(help="VGG-Face state dict, for face_encoder.onnx")] = None,
    threads: Annotated[int, typer.Option(help="CPU threads for verification (0 = PyTorch's default)")] = 0,
) -> None:
    """Export RUN_OR_CHECKPOINT to ONNX, verify it on real features, and optionally build fp16 / int8 models,
    a TensorRT engine and a Triton repository."""
    from .pipeline import ExitCode, ExportRequest, run_export
    from .shapes import ProfileOverrides

    if int8 and calib is None:
        raise typer.BadParameter(
            "--int8 needs --calib FEATURES (a feature corpus to calibrate on)", param_hint="--calib"
        )
    request = ExportRequest(
        source=run,
        out=out or Path("exports") / (run.name if run.is_dir() else run.parent.name),
        fp16=fp16,
        int8=int8,
        calib=calib,
        calib_clips=calib_clips,
        calib_method=calib_method,
        trt_calibrator=trt_calibrator,
        opset=opset,
        features=features,
        max_clips=max_clips,
        triton=triton,
        profile=ProfileOverrides(
            opt_batch=opt_batch, max_batch=max_batch, max_audio_len=max_audio_len, max_video_len=max_video_len
        ),
        engine=engine,
        workspace_gib=workspace_gib,
        timing_cache=timing_cache,
        version_compatible=version_compatible,
        hardware_compatible=hardware_compatible,
        face_weights=face_weights,
        threads=threads,
    )
    t0 = time.perf_counter()
    try:
        outcome = run_export(request, console)
    except Exception as err:
        if not _expected(err):
            raise
        console.print(f"[red]auxformer-export: {escape(str(err))}[/]")
        raise typer.Exit(ExitCode.EXPORT_FAILED) from err
    code = outcome.exit_code
    files = ", ".join(str(p) for p in outcome.files)
    console.print(
        f"{'done' if code != ExitCode.VERIFICATION_FAILED else 'FAILED'} in {time.perf_counter() - t0:.0f}s: {files}"
    )
    raise typer.Exit(int(code))


def _expected(err: Exception) -> bool:
    """Errors with a message meant for the user (the rest are bugs and keep their traceback)."""
    from auxformer.common.optional import MissingDependency
    from auxformer.runtime.contracts import FeatureError
    from auxformer.runtime.manifest import ManifestError
    from auxformer.runtime.profile import ProfileError
    from auxformer.train.checkpoint import CheckpointError
    from auxformer.train.corpus import CorpusError

    from .onnx_export import ExportError
    from .tensorrt_build import EngineBuildError

    known = (CheckpointError, ExportError, EngineBuildError, FeatureError, CorpusError, ManifestError)
    known += (ProfileError,)
    return isinstance(err, (*known, MissingDependency))


def main() -> None:
    app()
