"""Verification: the cases it builds, the thresholds per precision, and failures that name the input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console

from auxformer.export.backends import Memo, OnnxRuntimeBackend, TorchBackend
from auxformer.export.cases import ClipSet, build_cases
from auxformer.export.verify import Report, Thresholds, thresholds_for, verify

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
    m = exported.manifest
    return Memo(TorchBackend(exported.model, m.heads, m.output_names))


class Shifted:
    """A candidate that adds `delta` to one output of every batch."""

    def __init__(self, backend, delta, output: str = "logits_audio"):
        self.backend, self.delta, self.output = backend, delta, output
        self.name = "shifted"

    def run(self, feeds):
        out = dict(self.backend.run(feeds))
        out[self.output] = out[self.output] + self.delta
        return out


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
    candidate = OnnxRuntimeBackend(tiny_export().path, "onnxruntime fp32")
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
