"""`auxformer-export` end to end on a real (tiny, one-epoch) training run: files, verification reports,
exit codes, the TensorRT notice, an engine through the recording FAKE TensorRT, and Triton."""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import click
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import typer
from rich.console import Console
from typer.testing import CliRunner

from auxformer.common import cli_options
from auxformer.export import pipeline, tensorrt_build, verify
from auxformer.export.cases import build_cases, verification_clips
from auxformer.export.cli import app
from auxformer.export.onnx_export import read_manifest
from auxformer.export.package import Source
from auxformer.export.shapes import ProfileOverrides, profile_from_stats
from auxformer.export.tensorrt_build import Gpu
from auxformer.export.torch_runner import TorchRunner
from auxformer.runtime.manifest import INPUTS, Manifest, ManifestError
from auxformer.runtime.onnxruntime_runner import OnnxRuntimeRunner
from auxformer.runtime.runner import Runner
from auxformer.train.config import ModelConfig, TrainConfig
from auxformer.train.demo_corpus import LABELS, DemoSpec, generate
from auxformer.train.trainer import Trainer

from .fake_tensorrt import make_fake_tensorrt


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    corpus = generate(root / "corpus", DemoSpec(speakers=6, clips_per_class=1, video_dim=16))
    model_cfg = ModelConfig(num_layers=1, d_model=20, num_heads=2)
    trainer = Trainer(corpus, TrainConfig(epochs=1, batch_size=8), model_cfg, root / "run", Console(quiet=True), False)
    trainer.fit()
    return root / "run"


def invoke(*args: str):
    result = CliRunner().invoke(app, [*args, "--max-clips", "8"], catch_exceptions=False)
    return result.exit_code, result.output


def independent_check(run_dir, model_path) -> tuple[float, float]:
    """Top-1 agreement and max |prob diff| of `model_path` against the trained model, computed here
    without the verification code: PyTorch and a plain onnxruntime session on the clips verification
    uses (the run's dev + test clips cut into the same padded batches)."""
    source = Source.load(run_dir)
    cases = build_cases(verification_clips(source, max_clips=8), source.labels)
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    temperature = read_manifest(model_path).temperature
    same, prob_diff = [], 0.0
    for batch in (b for case in cases for b in case.batches):
        with torch.no_grad():
            logits = source.model(*(torch.from_numpy(np.ascontiguousarray(batch.feeds[k])) for k in INPUTS)).logits
        expected = (logits / temperature).softmax(-1).numpy()
        got_logits, got = session.run(["logits", "probs"], {k: batch.feeds[k] for k in INPUTS})
        same += list(logits.numpy().argmax(1) == got_logits.argmax(1))
        prob_diff = max(prob_diff, float(np.abs(got - expected).max()))
    return float(np.mean(same)), prob_diff


def test_fp16_without_tensorrt_writes_verified_models_and_exits_3(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on a machine without TensorRT
    ran: dict[str, int] = {}  # batches each ONNX file ran through the runtime's onnxruntime runner
    run = OnnxRuntimeRunner.run

    def recording(self, feeds):
        ran[self.path.name] = ran.get(self.path.name, 0) + 1
        return run(self, feeds)

    monkeypatch.setattr(OnnxRuntimeRunner, "run", recording)
    code, output = invoke(str(run_dir), "--out", str(tmp_path), "--fp16", "--triton", str(tmp_path / "triton"))
    assert code == 3, output
    # verified through the runtime's runner: every batch of every case, plus the speed comparison
    cases = json.loads((tmp_path / "model.fp16.verify.json").read_text())["cases"]
    assert ran["model.onnx"] > len(cases) and ran["model.fp16.onnx"] > len(cases)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["model.fp16.onnx", "model.fp16.verify.json", "model.onnx", "model.verify.json", "triton"]
    notices = [line for line in output.splitlines() if "no TensorRT engine" in line]
    assert len(notices) == 1 and "auxformer[gpu]" in notices[0]
    for name, precision in (("model.verify.json", "fp32"), ("model.fp16.verify.json", "fp16")):
        report = json.loads((tmp_path / name).read_text())
        assert report["passed"] and report["precision"] == precision
        assert report["candidate"].startswith("onnxruntime ") and report["candidate"].endswith(f"; {precision})")
        assert {c["name"] for c in report["cases"]} >= {"1x37x11, no audio", "32x64x200, no video", "clips, mixed"}
    assert json.loads((tmp_path / "model.verify.json").read_text())["max_abs_diff"] <= 1e-4
    manifest = read_manifest(tmp_path / "model.onnx")
    assert manifest.labels == list(LABELS) and manifest.heads == ["av", "audio", "video"]
    assert (manifest.video_dim, manifest.features.video_embedder) == (16, "demo")
    assert manifest.features.settings is None and manifest.features.provenance["source"] == "demo-features"
    assert manifest.model.name == "auxformer" and manifest.model.config["num_layers"] == 1
    assert manifest.prediction.head_modalities == {"av": ("audio", "video"), "audio": ("audio",), "video": ("video",)}
    assert manifest.normalization["in_graph"] and manifest.normalization["audio"]["dims"] == 130
    assert manifest.training.run == str(run_dir) and "macro_f1" in manifest.training.test
    assert read_manifest(tmp_path / "model.fp16.onnx").precision == "fp16"
    assert sorted(p.name for p in (tmp_path / "triton").iterdir()) == ["auxformer_onnx"]


class OnnxAsEngine:
    """Stands in for the runtime's TensorRT runner (no GPU here): runs the fp16 ONNX the fake engine was
    'built' from under the engine's profile, and records the shapes it was given."""

    def __init__(self, plan, manifest):
        self.onnx = OnnxRuntimeRunner(plan.parent / "model.fp16.onnx", "cpu")
        self.name, self.shapes, self.closed = "engine (onnxruntime stand-in)", [], False
        self.manifest, self.inputs, self.outputs = manifest, self.onnx.inputs, self.onnx.outputs
        self.profile = manifest.shapes

    def run(self, feeds):
        self.shapes.append((feeds["audio"].shape[0], feeds["audio"].shape[1], feeds["video"].shape[1]))
        return self.onnx.run(feeds)

    def close(self):
        self.closed = True


def test_engine_build_through_the_fake_tensorrt(run_dir, tmp_path, monkeypatch):
    fake = make_fake_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(tensorrt_build, "probe_gpu", lambda: Gpu("FAKE GPU (test)", "8.9"))
    engines = []
    monkeypatch.setattr(
        pipeline, "open_engine", lambda plan, manifest: engines.append(OnnxAsEngine(plan, manifest)) or engines[-1]
    )
    code, output = invoke(str(run_dir), "--out", str(tmp_path), "--fp16", "--triton", str(tmp_path / "triton"))
    assert code == 0, output
    # the engine is verified too, only on inputs its optimization profile accepts
    report = json.loads((tmp_path / "model.plan.verify.json").read_text())
    assert report["passed"] and report["precision"] == "fp16" and engines[0].closed
    assert isinstance(engines[0], Runner)
    profile = engines[0].profile
    assert engines[0].shapes and all(profile.accepts(b, ta, tv) is None for b, ta, tv in engines[0].shapes)
    # the default case 32x64x200 is longer in video than the profile allows: left out, not failed
    assert not any(c["name"].startswith("32x64x200") for c in report["cases"])
    assert fake.record.args("parser.parse_from_file") == [(str(tmp_path / "model.fp16.onnx"),)]
    sidecar = Manifest.read_sidecar(tmp_path / "model.plan")
    assert sidecar.precision == "fp16" and sidecar.engine["gpu"] == "FAKE GPU (test)"
    stats = json.loads((run_dir / "config.json").read_text())["length_stats"]
    assert sidecar.shapes.audio_len.opt == stats["audio"]["p50"]
    assert sidecar.shapes.video_len.max >= stats["video"]["max"]
    assert (tmp_path / "triton/auxformer_trt/1/model.plan").read_bytes() == b"FAKE-PLAN"


def test_a_broken_threshold_exits_1_and_names_the_case(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(verify.THRESHOLDS, "fp32", verify.Thresholds(max_abs_diff=0.0, min_agreement=1.0))
    code, output = invoke(str(run_dir), "--out", str(tmp_path))
    assert code == 1
    assert "verification failed: case 'clips, full': max |diff|" in " ".join(output.split())
    assert json.loads((tmp_path / "model.verify.json").read_text())["passed"] is False


def test_a_defective_export_fails_verification_and_exits_1(run_dir, tmp_path, monkeypatch):
    real_export = pipeline.export_onnx

    def export_then_corrupt(model, manifest, path, **options):
        """A defective exporter: the graph normalises audio with the wrong statistics."""
        result = real_export(model, manifest, path, **options)
        proto = onnx.load(str(path))
        (std,) = [t for t in proto.graph.initializer if t.name.endswith("audio_norm.std")]
        std.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(std) * 1.5, std.name))
        onnx.save(proto, str(path))
        return result

    monkeypatch.setattr(pipeline, "export_onnx", export_then_corrupt)
    code, output = invoke(str(run_dir), "--out", str(tmp_path))
    assert code == 1, output
    report = json.loads((tmp_path / "model.verify.json").read_text())
    assert report["passed"] is False and report["max_abs_diff"] > 1e-4
    broken = {c["name"] for c in report["cases"] if c["max_abs_diff"] > 1e-4}
    # every case with audio shows the defect; without audio the audio statistics must not matter
    assert broken == {c["name"] for c in report["cases"] if "no audio" not in c["name"]}
    assert "verification failed: case '" in " ".join(output.split())


def test_int8_writes_a_verified_qdq_model_with_its_speed(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    corpus = run_dir.parent / "corpus"
    assert Source.load(run_dir).ckpt.run.corpus == str(corpus.resolve())
    # no --calib: the run's own corpus, whose training partition calibrates
    code, output = invoke(str(run_dir), "--out", str(tmp_path), "--int8", "--calib-clips", "20")
    assert code == 3, output  # verified; no TensorRT here
    report = json.loads((tmp_path / "model.int8.verify.json").read_text())
    assert report["precision"] == "int8" and report["thresholds"] == {
        "max_abs_diff": None,
        "min_agreement": 0.97,
        "max_f1_delta": 0.01,
    }
    # the report's figures match an independent run of the int8 model and of PyTorch on the same clips
    agreement, prob_diff = independent_check(run_dir, tmp_path / "model.int8.onnx")
    clips = sum(c["clips"] for c in report["cases"])
    assert abs(report["agreement"] - agreement) <= 1 / clips and report["agreement"] >= 0.97
    assert report["max_prob_diff"] == pytest.approx(prob_diff, abs=1e-4) and prob_diff > 0  # int8 is not fp32
    assert report["passed"] and report["speed"]["int8"]["speedup_vs_fp32"] > 0
    assert read_manifest(tmp_path / "model.int8.onnx").precision == "int8"
    # calibrated on the run's training clips only: dev and test clips are never used to calibrate
    calibrated = {
        c for batch in json.loads((tmp_path / "calibration/calibration.json").read_text())["clip_ids"] for c in batch
    }
    splits = (run_dir / "splits.csv").read_text().splitlines()[1:]
    train = {row.split(",")[0] for row in splits if row.endswith(",train")}
    assert calibrated and calibrated <= train


def _with_corpus(run_dir: Path, folder: Path, corpus: str | None) -> Path:
    """A copy of the run's best checkpoint that records `corpus` as the run's own."""
    from auxformer.train.checkpoint import BEST, Checkpoint

    ckpt = Checkpoint.load(run_dir)
    ckpt.run.corpus = corpus
    folder.mkdir()
    ckpt.save(folder / BEST)
    return folder


def test_usage_and_export_errors(run_dir, tmp_path):
    code, output = invoke(str(_with_corpus(run_dir, tmp_path / "own", None)), "--int8", "--out", str(tmp_path / "x"))
    assert code == 4 and "--int8 needs --calib FEATURES: this run records no corpus" in " ".join(output.split())
    moved = _with_corpus(run_dir, tmp_path / "moved", str(tmp_path / "gone"))
    code, output = invoke(str(moved), "--int8", "--out", str(tmp_path / "x"))
    text = " ".join(output.split())
    assert code == 4 and "the run's own corpus" in text and "not a feature corpus folder" in text
    code, output = invoke(str(run_dir), "--int8", "--calib", str(tmp_path), "--out", str(tmp_path / "x"))
    assert code == 4 and "not a feature corpus folder" in " ".join(output.split())
    assert not (tmp_path / "x").exists()  # refused before any work
    code, output = invoke(str(tmp_path / "missing"))
    assert code == 4 and "no checkpoint" in output
    code, output = invoke(str(run_dir), "--max-batch", "4", "--opt-batch", "8", "--out", str(tmp_path / "y"))
    assert code == 4 and "min <= opt <= max" in output


def test_unreadable_checkpoints_exit_4_with_one_line(run_dir, tmp_path):
    """Torn, foreign, missing, incomplete or ill-fitting checkpoints: exit 4 and a message, never a traceback
    (invoke lets any exception through)."""
    good = (run_dir / "checkpoint.pt").read_bytes()
    raw = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    weights = dict(raw["state_dict"])
    weights.pop(next(iter(weights)))
    meta = json.loads(raw["metadata"])
    del meta["run"]["model_config"]
    cases = {
        "truncated": lambda p: p.write_bytes(good[: len(good) // 2]),
        "random bytes": lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
        "no checkpoint": lambda p: None,
        "missing weights": lambda p: torch.save({**raw, "state_dict": weights}, p),
        "missing metadata": lambda p: torch.save({**raw, "metadata": json.dumps(meta)}, p),
    }
    expected = {
        "truncated": "not a readable checkpoint",
        "random bytes": "not a readable checkpoint",
        "no checkpoint": "no checkpoint at",
        "missing weights": "weights do not fit its model",
        "missing metadata": "incomplete or damaged",
    }
    for name, make in cases.items():
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        make(folder / "checkpoint.pt")
        code, output = invoke(str(folder), "--out", str(tmp_path / "out"))
        assert code == 4 and expected[name] in " ".join(output.split()), (name, output)
        assert "Traceback" not in output


def test_help_documents_exit_codes():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for fragment in ("0 exported and verified", "1 verification failed", "3 exported and verified, but TensorRT"):
        assert fragment in text


def _requests(monkeypatch) -> list:
    """The ExportRequests the CLI would run (the export itself is left out)."""
    seen = []
    done = SimpleNamespace(exit_code=pipeline.ExitCode.OK, files=[])
    monkeypatch.setattr(pipeline, "run_export", lambda request, console: seen.append(request) or done)
    return seen


def test_options_default_to_the_request_dataclasses_defaults(tmp_path, monkeypatch):
    seen = _requests(monkeypatch)
    result = CliRunner().invoke(app, [str(tmp_path / "runs" / "demo")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (request,) = seen
    assert request == pipeline.ExportRequest(source=tmp_path / "runs" / "demo")
    assert request.out == Path("exports/runs")  # not a folder (yet): a checkpoint's run folder names it
    assert request.tensorrt == tensorrt_build.EngineOptions() and request.profile == ProfileOverrides()


def test_option_values_reach_the_request(tmp_path, monkeypatch):
    seen = _requests(monkeypatch)
    args = "--out o --fp16 --int8 --calib c --calib-clips 7 --calib-method entropy --trt-calibrator --opset 17"
    args += " --features f --max-clips 9 --triton t --no-engine --max-batch 16 --opt-batch 4 --max-audio-len 96"
    args += " --max-video-len 48 --workspace-gib 2.5 --timing-cache tc --version-compatible --hardware-compatible"
    args += " --face-weights w.pth --threads 3 --optimization-level 5"
    result = CliRunner().invoke(app, [str(tmp_path), *args.split()], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == [
        pipeline.ExportRequest(
            source=tmp_path,
            out=Path("o"),
            fp16=True,
            int8=True,
            calib=Path("c"),
            calib_clips=7,
            calib_method="entropy",
            trt_calibrator=True,
            opset=17,
            features=Path("f"),
            max_clips=9,
            triton=Path("t"),
            profile=ProfileOverrides(opt_batch=4, max_batch=16, max_audio_len=96, max_video_len=48),
            engine=False,
            tensorrt=tensorrt_build.EngineOptions(
                workspace_gib=2.5,
                timing_cache=Path("tc"),
                version_compatible=True,
                hardware_compatible=True,
                optimization_level=5,
            ),
            face_weights=Path("w.pth"),
            threads=3,
        )
    ]


def test_every_option_has_help_and_the_documented_names():
    command = typer.main.get_command(app)
    names = {name for p in command.params for name in p.opts + p.secondary_opts}
    documented = "--out --fp16 --int8 --calib --calib-clips --calib-method --trt-calibrator --opset --triton --features"
    documented += " --max-clips --engine --no-engine --max-batch --opt-batch --max-audio-len --max-video-len"
    documented += " --workspace-gib --timing-cache --version-compatible --hardware-compatible --face-weights --threads"
    assert set(documented.split()) <= names
    assert all(p.help for p in command.params if isinstance(p, click.Option))

    @dataclasses.dataclass
    class Painted:
        colour: str = "red"

    with pytest.raises(TypeError, match=r"--colour \(Painted\) has no help text"):
        cli_options.options(Painted, help={})


def test_verification_falls_back_to_synthetic_clips_without_the_corpus(run_dir):
    source = Source.load(run_dir)
    source.ckpt.run.corpus = str(run_dir / "moved-away")
    clip_set = verification_clips(source, max_clips=8)
    assert not clip_set.labelled and len(clip_set.clips) == 8 and "synthetic" in clip_set.source
    assert {c.video_dim for c in clip_set.clips} == {16}
    manifest = source.manifest(profile_from_stats(source.ckpt.run.length_stats))
    reference = TorchRunner(source.model, manifest)
    # synthetic clips must exercise the model: a candidate whose video projection is off fails on them
    altered = copy.deepcopy(source.model)
    with torch.no_grad():
        altered.video_proj.weight.mul_(1.5)
    cases = build_cases(clip_set, source.labels)
    report = verify.verify(reference, TorchRunner(altered, manifest), cases, "fp32", "m.onnx", clip_set.source, False)
    assert not report.passed and report.f1_delta is None and all(f1 is None for f1 in report.macro_f1.values())
    broken = {c.name for c in report.cases if c.max_abs_diff > 1e-4}
    assert broken == {c.name for c in report.cases if "no video" not in c.name}


def test_the_exported_manifest_reads_back_equal(run_dir):
    """What export writes is what the runtime reads: parts hold JSON's types (a tuple in the training
    config comes back as a list) and a wrong type is refused before any export work."""
    source = Source.load(run_dir)
    manifest = source.manifest(profile_from_stats(source.ckpt.run.length_stats))
    assert Manifest.from_json(manifest.to_json()) == manifest
    source.ckpt.run.feature_spec["video_embedder"] = 5
    with pytest.raises(ManifestError, match="video_embedder must be str"):
        source.manifest(profile_from_stats(source.ckpt.run.length_stats))
