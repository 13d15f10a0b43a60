"""`auxformer-export RUN_OR_CHECKPOINT [--out DIR] [--fp16] [--int8 --calib FEATURES] [--opset N] [--triton DIR]`.

Its options are ExportRequest's fields (export/request.py, torch-free so `--help` stays fast), with their
types and defaults; this module adds their help text."""

from __future__ import annotations

import inspect
import time
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from auxformer.common.cli_options import build, command_signature, options

from .request import ExportRequest

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
# the words of each option; its type and default are ExportRequest's (and its groups') field's
HELP = {
    "out": "output folder (default: exports/<run name>)",
    "fp16": "also write model.fp16.onnx and build an fp16 engine",
    "int8": "also write the Q/DQ model.int8.onnx, calibrated on --calib",
    "calib": "feature corpus for INT8 calibration (default: the run's own corpus, its training clips)",
    "calib_clips": "INT8 calibration clips (stratified by label and length)",
    "calib_method": "INT8 ranges: minmax | entropy | percentile",
    "trt_calibrator": "TensorRT < 10 only: implicit INT8 calibration (entropy)",
    "opset": "ONNX opset (>= 17)",
    "features": "feature corpus to verify on (default: the run's dev + test clips)",
    "max_clips": "clips to verify on, at most",
    "triton": "write a Triton model repository here",
    "engine": "build a TensorRT engine for --fp16 / --int8",
    "opt_batch": "profile opt batch (default: 8)",
    "max_batch": "profile max batch (default: 32)",
    "opt_audio_len": "profile opt audio frames (default: the median training clip)",
    "max_audio_len": f"profile max audio frames {LONGEST}",
    "opt_video_len": "profile opt video frames (default: the median training clip)",
    "max_video_len": f"profile max video frames {LONGEST}",
    "workspace_gib": "TensorRT workspace limit, GiB",
    "timing_cache": "TensorRT timing cache file (read and updated)",
    "version_compatible": "engine runs on later TensorRT versions",
    "hardware_compatible": "engine runs on any Ampere-or-newer GPU",
    "optimization_level": "TensorRT builder optimization level, 0-5 (default: TensorRT's, 3)",
    "face_weights": "VGG-Face state dict, for face_encoder.onnx",
    "threads": "CPU threads for verification (0 = PyTorch's default)",
}
PANELS = {"profile": "Engine profile (default: from the training clips' lengths)", "tensorrt": "TensorRT build"}


def export(
    run: Annotated[Path, typer.Argument(metavar="RUN_OR_CHECKPOINT", help="run folder or checkpoint.pt")],
    **options: Any,
) -> None:
    """Export RUN_OR_CHECKPOINT to ONNX, verify it on real features, and optionally build fp16 / int8 models,
    a TensorRT engine and a Triton repository."""
    from .pipeline import ExitCode, run_export

    request = build(ExportRequest, options, source=run)
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


def _command() -> None:
    """`export` with one option per field of ExportRequest (its precision-specific TensorRT setting and the
    source argument aside), registered on the app."""
    run = inspect.signature(export).parameters["run"]
    run = run.replace(annotation=typing.get_type_hints(export, include_extras=True)["run"])
    params = [run, *options(ExportRequest, HELP, PANELS, skip=("source", "precision"))]
    app.command(epilog=EXIT_CODES)(command_signature(export, params))


_command()


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
