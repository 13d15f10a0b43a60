"""Verification: the cases it builds, the runners it compares (the runtime's, for exported files), the
thresholds per precision, and failures that name the input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console

from auxformer.export.cases import ClipSet, build_cases
from auxformer.export.onnx_export import ExportError
from auxformer.export.pipeline import open_onnx
from auxformer.export.torch_runner import TorchRunner
from auxformer.export.verify import Memo, Report, Thresholds, thresholds_for, verify
from auxformer.runtime.loader import check_io
from auxformer.runtime.onnxruntime_runner import OnnxRuntimeRunner
from auxformer.runtime.profile import Profile, Range, batch_shape
from auxformer.runtime.runner import Runner

from .export_support import LABELS, tiny_export
from .runtime_support import feature_clip


def make_clips(n: int = 10, seed: int = 0) -> ClipSet:
    rng = np.random.default_rng(seed)
    lengths = [(int(rng.integers(20, 90)), int(rng.integers(6, 30))) for _ in range(n)]
    clips = [
        feature_clip(f"clip{i}", ta, tv, seed=seed * 1000 + i, face_rate=0.9, label=LABELS[i % len(LABELS)])
        for i, (ta, tv) in enumerate(lengths)
    ]
    return ClipSet(clips, "test clips", True)


SHAPES = ((1, 37, 11), (5, 101, 47))


@pytest.fixture(scope="module")
def cases():
    return build_cases(make_clips(), LABELS, shapes=SHAPES, batch_size=4)


@pytest.fixture(scope="module")
def reference():
    exported = tiny_export()
    return Memo(TorchRunner(exported.model, exported.manifest))


class Shifted:
    """A candidate that adds `delta` to one output of every batch (under `profile`, if given)."""

    def __init__(self, runner, delta, output: str = "logits_audio", profile: Profile | None = None):
        self.runner, self.delta, self.output = runner, delta, output
        self.name, self.profile, self.ran = "shifted", profile, []
        self.manifest, self.inputs, self.outputs = runner.manifest, runner.inputs, runner.outputs

    def run(self, feeds):
        self.ran.append(batch_shape(feeds))
        out = dict(self.runner.run(feeds))
        out[self.output] = out[self.output] + self.delta
        return out

    def close(self):
        pass


def test_cases_cover_shapes_padding_and_missing_modalities(cases):
    names = [c.name for c in cases]
    assert names[:4] == ["clips, full", "clips, no audio", "clips, no video", "clips, mixed"]
    assert sum(c.clips for c in cases[:1]) == 10 and len(cases[0].batches) == 3  # batches of 4
    for b, ta, tv in SHAPES:
        for condition in ("full", "no audio", "no video"):
            (batch,) = next(c for c in cases if c.name == f"{b}x{ta}x{tv}, {condition}").batches
            assert batch.feeds["audio"].shape == (b, ta, 130)
            assert batch.feeds["video_mask"].shape == (b, tv)
            assert batch.feeds["audio_mask"].any() == (condition != "no audio")
            assert batch.feeds["video_mask"].any() == (condition != "no video")
    padded = next(c for c in cases if c.name == "5x101x47, full").batches[0].feeds
    assert not padded["audio_mask"][:, -1].any()  # longer than every clip: padded on every row
    assert (padded["audio_mask"].sum(1) != padded["audio_mask"].sum(1)[0]).any()  # ragged lengths
    mixed = cases[3].batches[0].feeds
    assert [mixed["audio_mask"][i].any() for i in range(3)] == [True, False, True]
    assert [mixed["video_mask"][i].any() for i in range(3)] == [True, True, False]


def test_fp32_onnx_passes_and_the_report_is_saved(cases, reference, tmp_path):
    candidate = open_onnx(tiny_export().path)
    assert type(candidate) is OnnxRuntimeRunner  # the runtime's runner, not a session of export's own
    report = verify(reference, candidate, cases, "fp32", "model.onnx", "test clips")
    assert report.passed, report.failures
    assert report.agreement == 1.0 and report.max_abs_diff <= 1e-4
    assert report.f1_delta == 0.0
    data = json.loads(report.save(tmp_path / "model.verify.json").read_text())
    assert data["passed"] is True and len(data["cases"]) == len(cases)
    assert data["thresholds"] == {"max_abs_diff": 1e-4, "min_agreement": 1.0, "max_f1_delta": None}
    console = Console(record=True, width=120)
    console.print(report.table())
    text = console.export_text()
    assert "passed" in text and "5x101x47, no video" in text and "all cases" in text


def test_a_fp32_difference_names_the_case(cases, reference):
    report = verify(reference, Shifted(reference, 3e-4), cases, "fp32", "m.onnx", "test clips")
    assert not report.passed
    assert "case 'clips, full': max |diff| 3.00e-04 in logits_audio > 1e-04" in report.failures[0]
    assert report.agreement == 1.0  # an aux head moved, the fused prediction did not


def test_a_changed_prediction_names_the_clips(cases, reference):
    flip = Shifted(reference, np.array([100.0, 0, 0, 0], np.float32), output="logits")
    report = verify(reference, flip, cases, "fp16", "m.fp16.onnx", "test clips")
    assert not report.passed
    assert any("top-1 agreement" in f and "'clips, full' (clip" in f for f in report.failures)
    assert any("macro-F1 moved" in f for f in report.failures)


def test_non_finite_outputs_fail_at_any_precision(cases, reference):
    nan = Shifted(reference, np.float32(np.nan))
    report = verify(reference, nan, cases, "int8", "m.int8.onnx", "test clips", thresholds=Thresholds())
    assert any("non-finite values in logits_audio" in f for f in report.failures)


def test_unlabelled_features_report_no_f1(cases, reference):
    report = verify(reference, reference, cases, "fp16", "m.onnx", "synthetic", labelled=False)
    assert report.macro_f1 == {"pytorch": None} and report.f1_delta is None
    assert report.passed


def test_int8_thresholds_come_from_the_calibration_module():
    assert thresholds_for("int8") == Thresholds(min_agreement=0.97, max_f1_delta=0.01)
    assert thresholds_for("fp16") == Thresholds(min_agreement=0.99, max_f1_delta=0.005)
    with pytest.raises(ValueError, match="bf16"):
        thresholds_for("bf16")


def test_report_round_trips_as_json(cases, reference):
    report: Report = verify(reference, reference, cases, "fp32", "m.onnx", "test clips")
    assert json.loads(json.dumps(report.to_dict()))["candidate"] == "pytorch"


def test_every_runner_follows_the_protocol(reference):
    """The PyTorch reference (bare and memoised) and the runtime's onnxruntime runner: the same attributes,
    I/O that passes the runtime's check, and the manifest's outputs by name from `run`."""
    exported = tiny_export()
    feeds = build_cases(make_clips(3), LABELS, shapes=(), batch_size=3)[0].batches[0].feeds
    runners = [TorchRunner(exported.model, exported.manifest), reference, open_onnx(exported.path, threads=1)]
    for runner in runners:
        assert isinstance(runner, Runner) and runner.profile is None and runner.manifest == exported.manifest
        check_io(runner)
        out = runner.run(feeds)
        assert list(out) == exported.manifest.output_names
        assert {v.shape for v in out.values()} == {(3, len(LABELS))}
    np.testing.assert_allclose(runners[2].run(feeds)["probs"], runners[0].run(feeds)["probs"], atol=1e-5)
    runners[2].close()


def test_only_batches_the_candidates_profile_accepts_are_run(cases, reference):
    profile = Profile(batch=Range(1, 2, 4), audio_len=Range(1, 64, 100), video_len=Range(1, 20, 47))
    candidate = Shifted(reference, 0.0, profile=profile)
    report = verify(reference, candidate, cases, "fp32", "model.plan", "test clips")
    assert report.passed and candidate.ran
    assert all(profile.accepts(**shape) is None for shape in candidate.ran)
    names = {c.name for c in report.cases}
    assert "1x37x11, full" in names and "5x101x47, full" not in names  # 5 clips, 101 frames: too many
    assert sum(c.clips for c in report.cases if c.name == "clips, full") == 10  # batches of 4 fit
    tight = Shifted(reference, 0.0, profile=Profile(Range(1, 1, 1), Range(1, 1, 1), Range(1, 1, 1)))
    with pytest.raises(ExportError, match="none of the verification batches fit"):
        verify(reference, tight, cases, "fp32", "model.plan", "test clips")
