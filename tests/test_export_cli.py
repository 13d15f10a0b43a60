"""`auxformer-export` end to end on a real (tiny, one-epoch) training run: files, verification reports,
exit codes, the TensorRT notice, an engine through the recording FAKE TensorRT, and Triton."""

from __future__ import annotations

import json
import sys

import pytest
from rich.console import Console
from typer.testing import CliRunner

from auxformer.export import pipeline, tensorrt_build, verify
from auxformer.export.backends import TorchBackend
from auxformer.export.cases import build_cases, verification_clips
from auxformer.export.cli import app
from auxformer.export.onnx_export import read_manifest
from auxformer.export.package import Source
from auxformer.export.tensorrt_build import Gpu
from auxformer.runtime.manifest import Manifest
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


def test_fp16_without_tensorrt_writes_verified_models_and_exits_3(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on a machine without TensorRT
    code, output = invoke(str(run_dir), "--out", str(tmp_path), "--fp16", "--triton", str(tmp_path / "triton"))
    assert code == 3, output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["model.fp16.onnx", "model.fp16.verify.json", "model.onnx", "model.verify.json", "triton"]
    notices = [line for line in output.splitlines() if "no TensorRT engine" in line]
    assert len(notices) == 1 and "auxformer[gpu]" in notices[0]
    for name, precision in (("model.verify.json", "fp32"), ("model.fp16.verify.json", "fp16")):
        report = json.loads((tmp_path / name).read_text())
        assert report["passed"] and report["precision"] == precision
        assert {c["name"] for c in report["cases"]} >= {"1x37x11, no audio", "32x64x200, no video", "clips, mixed"}
    assert json.loads((tmp_path / "model.verify.json").read_text())["max_abs_diff"] <= 1e-4
    manifest = read_manifest(tmp_path / "model.onnx")
    assert manifest.labels == list(LABELS) and manifest.heads == ["av", "audio", "video"]
    assert (manifest.video_dim, manifest.features["video_embedder"]) == (16, "demo")
    assert manifest.model["name"] == "auxformer" and manifest.model["config"]["num_layers"] == 1
    assert manifest.normalization["in_graph"] and manifest.normalization["audio"]["dims"] == 130
    assert manifest.training["run"] == str(run_dir) and "macro_f1" in manifest.training["test"]
    assert read_manifest(tmp_path / "model.fp16.onnx").precision == "fp16"
    assert sorted(p.name for p in (tmp_path / "triton").iterdir()) == ["auxformer_onnx"]


class OnnxAsEngine:
    """Stands in for the runtime's TensorRT backend (no GPU here): runs the fp16 ONNX the fake engine was
    'built' from, and records the shapes it was given."""

    def __init__(self, plan, manifest):
        from auxformer.export.backends import OnnxRuntimeBackend

        self.onnx = OnnxRuntimeBackend(plan.parent / "model.fp16.onnx", "engine (onnxruntime stand-in)")
        self.name, self.shapes, self.closed = self.onnx.name, [], False
        self.limits = manifest.shapes

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
    limits = engines[0].limits
    assert engines[0].shapes and all(
        b <= limits["batch"]["max"] and ta <= limits["audio_len"]["max"] and tv <= limits["video_len"]["max"]
        for b, ta, tv in engines[0].shapes
    )
    assert fake.record.args("parser.parse_from_file") == [(str(tmp_path / "model.fp16.onnx"),)]
    sidecar = Manifest.read_sidecar(tmp_path / "model.plan")
    assert sidecar.precision == "fp16" and sidecar.engine["gpu"] == "FAKE GPU (test)"
    stats = json.loads((run_dir / "config.json").read_text())["length_stats"]
    assert sidecar.shapes["audio_len"]["opt"] == stats["audio"]["p50"]
    assert sidecar.shapes["video_len"]["max"] >= stats["video"]["max"]
    assert (tmp_path / "triton/auxformer_trt/1/model.plan").read_bytes() == b"FAKE-PLAN"


def test_a_broken_threshold_exits_1_and_names_the_case(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(verify.THRESHOLDS, "fp32", verify.Thresholds(max_abs_diff=0.0, min_agreement=1.0))
    code, output = invoke(str(run_dir), "--out", str(tmp_path))
    assert code == 1
    assert "verification failed: case 'clips, full': max |diff|" in " ".join(output.split())
    assert json.loads((tmp_path / "model.verify.json").read_text())["passed"] is False


def test_int8_writes_a_verified_qdq_model_with_its_speed(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    corpus = run_dir.parent / "corpus"
    code, output = invoke(str(run_dir), "--out", str(tmp_path), "--int8", "--calib", str(corpus), "--calib-clips", "20")
    assert code == 3, output  # verified; no TensorRT here
    report = json.loads((tmp_path / "model.int8.verify.json").read_text())
    assert report["precision"] == "int8" and report["thresholds"] == {
        "max_abs_diff": None,
        "min_agreement": 0.97,
        "max_f1_delta": 0.01,
    }
    assert report["passed"] == (report["agreement"] >= 0.97 and abs(report["f1_delta"]) <= 0.01)
    assert report["max_prob_diff"] > 0 and report["speed"]["int8"]["speedup_vs_fp32"] > 0
    assert read_manifest(tmp_path / "model.int8.onnx").precision == "int8"
    # calibrated on the run's training clips only: dev and test clips are never used to calibrate
    calibrated = {
        c for batch in json.loads((tmp_path / "calibration/calibration.json").read_text())["clip_ids"] for c in batch
    }
    splits = (run_dir / "splits.csv").read_text().splitlines()[1:]
    train = {row.split(",")[0] for row in splits if row.endswith(",train")}
    assert calibrated and calibrated <= train


def test_usage_and_export_errors(run_dir, tmp_path):
    code, output = invoke(str(run_dir), "--int8")
    assert code == 2 and "--calib" in output
    code, output = invoke(str(run_dir), "--int8", "--calib", str(tmp_path), "--out", str(tmp_path / "x"))
    assert code == 4 and "a feature corpus folder" in output
    assert not (tmp_path / "x").exists()  # refused before any work
    code, output = invoke(str(tmp_path / "missing"))
    assert code == 4 and "no checkpoint" in output
    code, output = invoke(str(run_dir), "--max-batch", "4", "--opt-batch", "8", "--out", str(tmp_path / "y"))
    assert code == 4 and "min <= opt <= max" in output


def test_help_documents_exit_codes():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for fragment in ("0 exported and verified", "1 verification failed", "3 exported and verified, but TensorRT"):
        assert fragment in text


def test_verification_falls_back_to_synthetic_clips_without_the_corpus(run_dir):
    source = Source.load(run_dir)
    source.ckpt.run.corpus = str(run_dir / "moved-away")
    clip_set = verification_clips(source, max_clips=8)
    assert not clip_set.labelled and len(clip_set.clips) == 8 and "synthetic" in clip_set.source
    assert {c.video_dim for c in clip_set.clips} == {16}
    reference = TorchBackend(source.model, source.heads, ["logits", "probs", *(f"logits_{h}" for h in source.heads)])
    cases = build_cases(clip_set, source.labels)
    report = verify.verify(reference, reference, cases, "fp32", "m.onnx", clip_set.source, labelled=False)
    assert report.passed and report.f1_delta is None
