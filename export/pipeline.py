"""`auxformer-export` end to end: checkpoint -> model.onnx -> verified -> fp16 / int8 ONNX -> verified ->
TensorRT engine -> Triton repository. Every exported model is verified before anything is built on it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import IntEnum
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape

from auxformer.calibration.dataset import CalibrationSet, write_calibration_set
from auxformer.calibration.int8 import quantize
from auxformer.calibration.trt_calibrator import make_entropy_calibrator, needs_legacy_calibrator
from auxformer.common import atomic
from auxformer.common.optional import require
from auxformer.runtime.features import FeatureSettings
from auxformer.runtime.loader import check_io, load_runner
from auxformer.runtime.manifest import Manifest
from auxformer.runtime.media import vggface
from auxformer.runtime.media.torch_state import read_state_dict
from auxformer.runtime.onnxruntime_runner import OnnxRuntimeOptions
from auxformer.runtime.profile import Profile
from auxformer.runtime.runner import Runner
from auxformer.train.corpus import CorpusError, FeatureCorpus

from . import speed
from .cases import build_cases, verification_clips
from .fp16 import convert_fp16
from .onnx_export import ExportError, OnnxExport, export_onnx
from .package import Source
from .request import ExportRequest
from .shapes import profile_from_stats
from .tensorrt_build import (
    EngineResult,
    EngineUnavailable,
    OnnxModels,
    build_engine,
    import_tensorrt,
)
from .torch_runner import TorchRunner
from .triton import write_repository
from .verify import Memo, Report, verify

FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
ENGINE_FILE = "model.plan"
CALIBRATION_DIR = "calibration"  # the INT8 calibration batches
FACE_ENCODER_FILE = "face_encoder.onnx"


class ExitCode(IntEnum):
    OK = 0
    VERIFICATION_FAILED = 1  # a threshold broke; the report names the case
    USAGE = 2  # bad options (typer's own code for usage errors)
    NO_ENGINE = 3  # exported and verified, but no TensorRT / GPU here, so no engine
    EXPORT_FAILED = 4  # unreadable checkpoint, a broken graph, TensorRT refused the model


@dataclass
class ExportOutcome:
    onnx: OnnxExport
    reports: dict[str, Report] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    engine: EngineResult | None = None
    no_engine: str | None = None  # why no engine was built, when one was asked for

    @property
    def exit_code(self) -> ExitCode:
        if any(not r.passed for r in self.reports.values()):
            return ExitCode.VERIFICATION_FAILED
        if self.no_engine is not None:
            return ExitCode.NO_ENGINE
        return ExitCode.OK


def calibration_corpus(request: ExportRequest, source: Source) -> Path:
    """The feature corpus INT8 calibrates on: --calib, or else the run's own corpus (whose training
    partition is then the calibration pool); refused before any work when there is none."""
    if request.calib is not None:
        calib, what = request.calib, "--calib"
    elif source.ckpt.run.corpus is not None:
        calib, what = Path(source.ckpt.run.corpus), "the run's own corpus"
    else:
        raise CorpusError("--int8 needs --calib FEATURES: this run records no corpus of its own to calibrate on")
    if not (calib / "manifest.csv").is_file():
        raise CorpusError(
            f"--int8 calibrates on {what}, {calib}, which is not a feature corpus folder (no manifest.csv); "
            "give --calib FEATURES"
        )
    return calib


def calibration_set(corpus_root: Path, source: Source, profile: Profile, request: ExportRequest) -> CalibrationSet:
    """A stratified sample of the calibration corpus (its training-partition clips when it is the run's
    corpus), written beside the models as padded batches: the Q/DQ quantiser and TensorRT < 10 both read it."""
    corpus = FeatureCorpus.open(corpus_root)
    entries = source.training_entries(corpus)
    return write_calibration_set(
        corpus, request.out / CALIBRATION_DIR, entries, n=request.calib_clips, batch_size=profile.batch.opt
    )


def run_export(request: ExportRequest, console: Console) -> ExportOutcome:
    source = Source.load(request.source)
    calib_root = calibration_corpus(request, source) if request.int8 else None  # before minutes of work
    profile = profile_from_stats(source.ckpt.run.length_stats, request.profile)
    manifest = source.manifest(profile)
    out = request.out

    exported = export_onnx(source.model, manifest, out / FILES["fp32"], opset=request.opset)
    console.print(
        f"[bold]{exported.path}[/]: {exported.node_count} nodes ({exported.optimized_node_count} after onnxruntime's "
        f"optimisations), opset {exported.opset}, {exported.size_bytes / 1e6:.1f} MB, "
        f"exported in {exported.seconds:.1f}s"
    )
    outcome = ExportOutcome(exported, files=[exported.path])

    if request.threads:
        torch.set_num_threads(request.threads)
    clip_set = verification_clips(source, request.features, request.max_clips)
    cases = build_cases(clip_set, source.labels)
    reference = Memo(TorchRunner(source.model, manifest))
    models = {"fp32": exported.path}
    for precision in request.precisions:
        if precision == "fp16":
            models["fp16"] = convert_fp16(exported.path, out / FILES["fp16"]).path
        elif precision == "int8":
            calib = calibration_set(calib_root, source, profile, request)
            info = quantize(exported.path, calib, out / FILES["int8"], request.calib_method)
            models["int8"] = out / FILES["int8"]
            console.print(
                f"[bold]{models['int8']}[/]: {info.quantized_nodes} MatMul/Gemm inputs quantised "
                f"({info.method} calibration on {info.clips} clips) in {info.seconds:.0f}s"
            )
        candidate = open_onnx(models[precision], request.threads)
        try:
            report = verify(
                reference, candidate, cases, precision, models[precision], clip_set.source, clip_set.labelled
            )
        finally:
            candidate.close()
        if precision != "fp32":
            report.speed = speed.compare(
                {"fp32": models["fp32"], precision: models[precision]}, cases[0].batches[0].feeds
            )
        saved = _record(
            outcome, precision, report, out / models[precision].name.replace(".onnx", ".verify.json"), console
        )
        outcome.files += [saved] if precision == "fp32" else [models[precision], saved]

    if request.engine and (request.fp16 or request.int8):
        built = _engine(request, outcome, models, manifest, profile, console)
        if built is not None:  # the engine is what runs: verify it like every other exported model
            _verify_engine(built, outcome, reference, cases, clip_set, console)
    if manifest.features.video_embedder == vggface.NAME:
        export_face_encoder(request, manifest, outcome, console)
    if request.triton is not None:
        plan = outcome.engine.plan if outcome.engine else None
        outcome.files += write_repository(request.triton, manifest, profile, exported.path, plan)
    return outcome


def _record(outcome: ExportOutcome, key: str, report: Report, path: Path, console: Console) -> Path:
    """Save a verification report beside its model, print it, and keep it in the outcome."""
    saved = report.save(path)
    console.print(report.table())
    for failure in report.failures:
        console.print(f"[red]verification failed[/]: {escape(failure)}")
    outcome.reports[key] = report
    return saved


def open_onnx(path: Path, threads: int = 0) -> Runner:
    """An exported ONNX model in the runtime's onnxruntime runner, on the CPU, loaded and I/O-checked
    the way `Session.load` does it. Idle threads sleep: the PyTorch reference shares the CPU."""
    return load_runner(path, "onnxruntime", "cpu", OnnxRuntimeOptions(threads=threads, spinning=False))


def open_engine(plan: Path, manifest: Any) -> Runner:
    """The runtime's TensorRT runner on the first GPU (a seam for tests without a GPU)."""
    from auxformer.runtime.tensorrt_runner import TensorRTRunner

    return TensorRTRunner(plan, device="cuda:0", manifest=manifest)


def _verify_engine(
    built: EngineResult,
    outcome: ExportOutcome,
    reference: Memo,
    cases: list[Any],
    clip_set: Any,
    console: Console,
) -> None:
    engine = open_engine(built.plan, built.manifest)
    try:  # checked like `Session.load` does; verify runs the batches the engine's profile accepts
        check_io(engine)
        report = verify(
            reference,
            engine,
            cases,
            built.manifest.precision,
            built.plan,
            clip_set.source,
            clip_set.labelled,
        )
    finally:
        engine.close()
    outcome.files.append(_record(outcome, "engine", report, Path(f"{built.plan}.verify.json"), console))


def _engine(
    request: ExportRequest,
    outcome: ExportOutcome,
    models: dict[str, Path],
    manifest: Any,
    profile: Profile,
    console: Console,
) -> EngineResult | None:
    if outcome.exit_code == ExitCode.VERIFICATION_FAILED:
        console.print("no TensorRT engine: verification failed, so there is nothing trustworthy to build from")
        return None
    options = replace(request.tensorrt, precision="int8" if request.int8 else "fp16")
    try:
        calibrator = _legacy_calibrator(request, profile, console) if request.int8 and request.trt_calibrator else None
        result = build_engine(
            OnnxModels(**models), request.out / ENGINE_FILE, manifest, profile, options, calibrator=calibrator
        )
    except EngineUnavailable as err:
        outcome.no_engine = str(err)
        verified = ", ".join(p.name for p in models.values())
        console.print(f"[yellow]no TensorRT engine[/]: {escape(str(err))}; {verified} written and verified")
        return None
    outcome.engine = result
    outcome.files += [result.plan, result.sidecar]
    engine = result.manifest.engine or {}
    console.print(
        f"[bold]{result.plan}[/]: TensorRT {engine.get('tensorrt_version')} on {engine.get('gpu')} "
        f"(sm {engine.get('compute_capability')}), {options.precision}, built in {result.seconds:.0f}s"
    )
    return result


def _legacy_calibrator(request: ExportRequest, profile: Profile, console: Console) -> Any:
    """TensorRT < 10: an entropy calibrator over the calibration batches, at the profile's opt shape."""
    trt = import_tensorrt()
    if not needs_legacy_calibrator(trt.__version__):
        console.print(f"TensorRT {trt.__version__} builds INT8 from the Q/DQ model; --trt-calibrator is for < 10")
        return None
    require("pycuda.autoinit")  # the calibrator's device buffers need a current CUDA context
    shape = (profile.batch.opt, profile.audio_len.opt, profile.video_len.opt)
    calib = CalibrationSet.open(request.out / CALIBRATION_DIR)
    # TensorRT checks a cache's header, not the network it came from: name it after the model, so a
    # re-export of a retrained model never reuses the old model's INT8 scales
    model_hash = hashlib.sha256((request.out / FILES["fp32"]).read_bytes()).hexdigest()[:16]
    return make_entropy_calibrator(calib, shape, request.out / f"calibration-{model_hash}.cache")


def export_face_encoder(request: ExportRequest, manifest: Manifest, outcome: ExportOutcome, console: Console) -> None:
    """`face_encoder.onnx`: the runtime's VGG-Face graph for --face-weights, with the preprocessing the
    model's features were made with, so an app embeds faces exactly as the training corpus did."""
    if request.face_weights is None:
        console.print(
            f"[yellow]{FACE_ENCODER_FILE} not written[/]: the model reads {vggface.NAME} features; "
            "pass --face-weights (a VGG-Face state dict) to export the embedder too"
        )
        return
    recorded = manifest.features.settings
    settings = FeatureSettings.from_dict(recorded) if recorded else FeatureSettings(video_embedder=vggface.NAME)
    try:
        state = read_state_dict(request.face_weights)
        graph = vggface.build_onnx(state, settings.vggface_preprocess)
    except (OSError, ValueError) as err:  # unreadable, not a state dict, not VGG-Face's keys
        raise ExportError(f"--face-weights {request.face_weights}: {err}") from err
    if vggface.embedding_dim(state) != manifest.video_dim:
        raise ExportError(
            f"--face-weights {request.face_weights}: the embedder makes {vggface.embedding_dim(state)}-dim "
            f"features, the model reads {manifest.video_dim}"
        )
    path = request.out / FACE_ENCODER_FILE
    atomic.write_bytes(path, graph)
    outcome.files.append(path)
    console.print(
        f"[bold]{path}[/]: {vggface.NAME} embedder ({settings.vggface_preprocess} preprocessing), "
        "dynamic batch of frames"
    )
