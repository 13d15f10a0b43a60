"""The TensorRT runner's logic against a FAKE TensorRT runtime and a fake pycuda (tests/fake_trt_runtime.py):
API choice by version, input shapes per batch within the profile, buffer reuse, one stream, a lock
around the execution context, and manifest checks. The fake runs the ONNX model, so predictions
through the "engine" must equal the onnxruntime ones."""

from __future__ import annotations

import sys
import threading
import types

import pytest

from auxformer.runtime import ManifestError, Session, Status
from auxformer.runtime.batching import pad_batch
from auxformer.runtime.loader import check_io, load_runner
from auxformer.runtime.manifest import INPUTS
from auxformer.runtime.profile import Profile
from auxformer.runtime.runner import Runner, RunnerError
from auxformer.runtime.tensorrt_runner import TensorRTRunner

from .export_support import tiny_export
from .fake_trt_runtime import Recorder, make_fake_cuda, make_fake_tensorrt, write_fake_plan
from .runtime_support import SHAPES, VIDEO_DIM, feature_clip, ragged_clips, scratch_dir

VERSIONS = ["10.3.0", "8.6.1", "8.4.3"]


@pytest.fixture
def fake_gpu(monkeypatch):
    """Install a fake `tensorrt` (version chosen by the test) and `pycuda.driver`; return the recorder."""

    def install(version: str) -> Recorder:
        record = Recorder()
        cuda = make_fake_cuda(record)
        package = types.ModuleType("pycuda")
        package.driver = cuda  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "pycuda", package)
        monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
        monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt(version, cuda, record))
        return record

    return install


@pytest.fixture(scope="module")
def plan():
    return write_fake_plan(tiny_export().path, scratch_dir() / "model.plan", SHAPES, VIDEO_DIM)


@pytest.fixture(scope="module")
def reference():
    return Session.load(tiny_export().path, device="cpu")


@pytest.mark.parametrize("version", VERSIONS)
def test_engine_predictions_match_onnxruntime(fake_gpu, plan, reference, version):
    record = fake_gpu(version)
    session = Session.load(plan, device="cuda:0")
    assert session.name.startswith(f"TensorRT {version}")
    clips = ragged_clips(12, seed=4)
    for a, b in zip(reference.predict(clips, batch_size=4), session.predict(clips, batch_size=4), strict=True):
        assert (a.label, a.status, a.present) == (b.label, b.status, b.present)
        if a.probabilities:
            assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) < 1e-6
    named = tuple(int(x) for x in version.split(".")[:2]) >= (8, 5)
    executed = record.names()
    assert ("execute_async_v3" in executed) == named and ("execute_async_v2" in executed) == (not named)
    assert ("set_input_shape" in executed) and (("set_binding_shape" in executed) == (not named))
    session.close()


def test_shapes_are_set_per_batch_and_buffers_reused(fake_gpu, plan):
    record = fake_gpu("10.3.0")
    session = Session.load(plan)
    session.predict([feature_clip(f"big{i}", 300, 90, seed=i) for i in range(4)], batch_size=4)
    allocations = session.runner.buffers.allocations
    assert allocations == len(INPUTS) + len(session.manifest.output_names)
    session.predict([feature_clip("small", 40, 12)], batch_size=4)
    session.predict([feature_clip(f"mid{i}", 120, 36, seed=i) for i in range(3)], batch_size=4)
    assert session.runner.buffers.allocations == allocations  # smaller batches reuse the big buffers
    shapes = [args[1] for args in record.args("set_input_shape") if args[0] == "audio"]
    assert shapes == [(4, 300, 130), (1, 40, 130), (3, 120, 130)]
    assert len(record.args("Stream")) == 1
    assert {args[2] for args in record.args("htod")} == {record.args("Stream")[0][0]}  # one stream throughout
    # a larger batch than ever before grows the buffers once
    session.predict([feature_clip(f"long{i}", 320, 100, seed=i) for i in range(8)], batch_size=8)
    assert session.runner.buffers.allocations > allocations


def test_batches_and_clips_respect_the_engine_profile(fake_gpu, plan):
    record = fake_gpu("10.3.0")
    session = Session.load(plan)
    clips = [feature_clip(f"c{i}", 100, 30, seed=i) for i in range(20)] + [feature_clip("too_long", 400, 30)]
    predictions = session.predict(clips, batch_size=32)
    batch_sizes = [args[1][0] for args in record.args("set_input_shape") if args[0] == "audio"]
    assert max(batch_sizes) == SHAPES["batch"]["max"] and sum(batch_sizes) == 20
    refused = predictions[-1]
    assert refused.status is Status.FAILED and "audio has 400 frames, the engine takes at most 320" in refused.reason
    assert all(p.status is Status.OK for p in predictions[:-1])


def test_concurrent_calls_take_turns_on_the_context(fake_gpu, plan):
    record = fake_gpu("10.3.0")
    session = Session.load(plan)
    sets = [ragged_clips(8, seed=40 + k) for k in range(4)]
    sequential = [[p.probabilities for p in session.predict(s, batch_size=2)] for s in sets]
    results: list = [None] * len(sets)
    threads = [
        threading.Thread(target=lambda k=k: results.__setitem__(k, session.predict(sets[k], batch_size=2)))
        for k in range(len(sets))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert record.overlaps == 0
    assert [[p.probabilities for p in r] for r in results] == sequential


def test_a_sidecar_that_does_not_describe_the_engine_is_refused(fake_gpu, plan, tmp_path):
    fake_gpu("10.3.0")
    other = write_fake_plan(tiny_export().path, tmp_path / "model.plan", SHAPES, VIDEO_DIM)
    sidecar = tmp_path / "model.plan.json"
    sidecar.write_text(sidecar.read_text().replace('"max": 320', '"max": 640', 1))
    with pytest.raises(ManifestError, match="does not belong to this engine"):
        Session.load(other)
    sidecar.unlink()
    with pytest.raises(ManifestError, match=r"no manifest beside it \(model.plan.json\)"):
        Session.load(other)


def test_an_unreadable_engine_and_a_cpu_device_are_refused(fake_gpu, plan, tmp_path):
    record = fake_gpu("10.3.0")
    broken = tmp_path / "model.plan"
    broken.write_bytes(b"\x00not an engine")
    (tmp_path / "model.plan.json").write_text((plan.parent / "model.plan.json").read_text())
    with pytest.raises(RunnerError, match=r"could not load this engine \(built with TensorRT fake"):
        Session.load(broken)
    assert record.names().count("ctx.detach") == 1  # the CUDA context is given back when loading fails
    with pytest.raises(RunnerError, match="runs on a GPU"):
        Session.load(plan, device="cpu")


def test_closing_twice_gives_the_context_back_once(fake_gpu, plan):
    record = fake_gpu("10.3.0")
    with Session.load(plan, device="cuda:0") as session:
        session.close()
    assert record.names().count("ctx.detach") == 1


def test_the_engine_runner_follows_the_protocol_with_the_engines_profile(fake_gpu, plan):
    fake_gpu("10.3.0")
    runner = load_runner(plan, device="cuda:0")
    assert type(runner) is TensorRTRunner and isinstance(runner, Runner)
    check_io(runner)
    assert runner.profile == Profile.from_dict(SHAPES) == runner.manifest.shapes  # read from the engine
    feeds = runner.profile.fit(pad_batch(ragged_clips(3, seed=9)))
    out = runner.run(feeds)
    assert list(out) == runner.manifest.output_names and out["probs"].shape[0] == 3
    runner.close()
