"""Memory bounds of the Session: the estimate of a batch's memory, batches cut by cost, clips too big
for the budget failed and never run, allocation failures failing only their clips, a run's peak RSS
on a folder with a 200000-frame `.npz` and a 59-s clip, and feature files that are not features."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from auxformer.runtime import Session, Status
from auxformer.runtime.bounds import GIB, MemoryBudget, ModelShape
from auxformer.runtime.bucketing import plan_batches
from auxformer.runtime.clip_inputs import load_npz
from auxformer.runtime.contracts import FeatureError
from auxformer.runtime.runner import BatchError

from .export_support import tiny_export
from .runtime_support import VIDEO_DIM, feature_clip, ragged_clips, write_npz

PAPER = ModelShape()  # d_model 130, 10 heads, 4096-dim video
MINUTE = (5900, 1770)  # a 59-s clip: audio at 100 fps, video at 30 fps
# the subprocess run's budget and its bound on peak RSS (README, "Runtime": measured there)
RUN_BUDGET = int(1.5 * GIB)
RSS_BOUND = RUN_BUDGET + GIB // 2  # the batch's work plus the interpreter, numpy, onnxruntime and the model


def test_the_estimate_grows_with_every_axis():
    for shape in (PAPER, ModelShape("audio_only", d_model=20, num_heads=2, video_dim=VIDEO_DIM)):
        sizes = [1, 2, 7, 100, 1000, 6000]
        for b, a, v in itertools.product([1, 2, 16], sizes, sizes):
            here = shape.batch_bytes(b, a, v)
            assert shape.batch_bytes(b + 1, a, v) > here
            assert shape.batch_bytes(b, a + 1, v) > here
            assert shape.batch_bytes(b, a, v + 1) > here  # the inputs grow even where attention does not


def test_the_estimate_catches_the_big_cases():
    # 200000 audio frames: a 10-head score tensor alone is 1.6 TB
    assert PAPER.batch_bytes(1, 200_000, 1) > 1000 * GIB
    # one 59-s clip needs gigabytes (6.1 GB RSS measured), four of them in one batch four times that
    one = PAPER.batch_bytes(1, *MINUTE)
    assert 5 * GIB < one < 8 * GIB
    assert PAPER.batch_bytes(4, *MINUTE) > 3.9 * one
    # attention is quadratic: twice as long, about four times the memory
    assert PAPER.batch_bytes(1, 2 * MINUTE[0], 2 * MINUTE[1]) > 3.5 * one
    # more heads, more memory; an audio-only model has no video attention
    assert replace(PAPER, num_heads=20).batch_bytes(1, *MINUTE) > 1.8 * one
    assert replace(PAPER, name="audio_only").batch_bytes(1, 100, 20_000) < PAPER.batch_bytes(1, 100, 20_000) / 50


def test_the_model_shape_comes_from_the_manifest():
    shape = ModelShape.of(tiny_export().manifest)
    assert (shape.name, shape.d_model, shape.num_heads, shape.video_dim) == ("auxformer", 20, 2, VIDEO_DIM)


def test_the_default_budget_is_a_fraction_of_memory():
    assert MemoryBudget(bytes=123).limit() == 123
    default = MemoryBudget().limit()
    assert GIB // 4 <= default <= 4096 * GIB
    assert MemoryBudget(fraction=0.25).limit() == pytest.approx(default / 2, rel=1e-6)
    with pytest.raises(ValueError):
        MemoryBudget(fraction=0)


def test_batches_are_cut_by_cost_not_only_by_count():
    shape = ModelShape(d_model=20, num_heads=2, video_dim=VIDEO_DIM)
    lengths = [(100, 30)] * 8 + [(3000, 900)] * 8
    budget = shape.batch_bytes(3, 3000, 900)  # three long clips fit, a fourth does not
    batches = plan_batches(lengths, 16, shape.batch_bytes, budget)
    assert sorted(i for b in batches for i in b) == list(range(16))
    assert [len(b) for b in batches] == [8, 3, 3, 2]  # the short clips share a batch, the long ones don't
    for b in batches:
        cost = shape.batch_bytes(len(b), max(lengths[i][0] for i in b), max(lengths[i][1] for i in b))
        assert cost <= budget
    assert [len(b) for b in plan_batches(lengths, 16)] == [16]  # without a cost: by count only
    # a clip over the budget on its own still gets a batch (the session refuses it before)
    assert plan_batches([(10, 10), (10**6, 10)], 4, shape.batch_bytes, budget) == [[0], [1]]


class FailingRunner:
    """The tiny model's runner, raising an allocation error on batches of more than `most` clips (as
    onnxruntime does when a batch needs more memory than there is) and on clips named in `bad`."""

    def __init__(self, inner, most: int, bad: set[int] = frozenset(), error: type[BaseException] = BatchError):
        self.inner, self.most, self.bad, self.error = inner, most, bad, error
        self.name, self.manifest, self.profile = "failing", inner.manifest, None
        self.inputs, self.outputs = inner.inputs, inner.outputs
        self.batches: list[tuple[int, int]] = []  # (clips, padded audio frames) of every batch it was given

    def run(self, feeds):
        self.batches.append(feeds["audio"].shape[:2])
        lengths = feeds["audio_mask"].sum(1)
        if len(lengths) > self.most or self.bad & set(lengths.tolist()):
            raise self.error("Failed to allocate memory for requested buffer of size 1099511627776")
        return self.inner.run(feeds)

    def close(self):
        pass


@pytest.mark.parametrize("error", [BatchError, MemoryError])
def test_an_allocation_failure_fails_only_its_clips(error):
    good = Session.load(tiny_export().path, device="cpu")
    clips = ragged_clips(6, seed=5)
    for clip in clips:  # distinct audio lengths identify the clips inside a batch
        clip.audio_mask[:] = True
    assert len({len(c.audio_mask) for c in clips}) == len(clips)
    bad_length = len(clips[2].audio_mask)
    runner = FailingRunner(good.runner, most=2, bad={bad_length}, error=error)
    predictions = Session(runner).predict(clips, batch_size=4)
    expected = good.predict(clips, batch_size=1)
    sizes = [b for b, _ in runner.batches]
    assert max(sizes) == 4 and sizes.count(1) >= 4  # the big batch failed, its clips ran alone
    for clip, p, e in zip(clips, predictions, expected, strict=True):
        assert p.clip_id == clip.clip_id
        if len(clip.audio_mask) == bad_length:
            assert p.status is Status.FAILED and "Failed to allocate memory" in p.reason
        else:
            assert p.status == e.status and p.label == e.label


def test_onnxruntime_failing_to_allocate_fails_only_that_clip():
    """No budget to stop it: onnxruntime itself refuses the 320 GB score tensor of 200000 frames."""
    session = Session.load(tiny_export().path, device="cpu", memory=MemoryBudget(bytes=1 << 50))
    huge, good = session.predict([feature_clip("huge", 200_000, 30), feature_clip("good", 50, 15)])
    assert huge.status is Status.FAILED and "onnxruntime could not run the batch" in huge.reason
    assert good.status is Status.OK and good.label


def test_a_clip_over_the_budget_is_failed_and_never_run():
    inner = Session.load(tiny_export().path, device="cpu").runner
    runner = FailingRunner(inner, most=64)
    shape = ModelShape.of(inner.manifest)
    budget = shape.batch_bytes(1, 500, 150)
    clips = [feature_clip("short", 100, 30), feature_clip("long", 2000, 600), feature_clip("mid", 400, 120)]
    short, long, mid = Session(runner, memory=MemoryBudget(bytes=budget)).predict(clips)
    assert short.status is Status.OK and mid.status is Status.OK
    assert long.status is Status.FAILED and "memory budget" in long.reason and "2000 audio" in long.reason
    assert runner.batches and all(frames <= 400 for _, frames in runner.batches)  # the long clip never ran


def test_feature_files_that_are_not_features_fail_with_a_reason(tmp_path):
    session = Session.load(tiny_export().path, device="cpu")
    good = feature_clip("good", 50, 15)
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "torn.npz").write_bytes(b"PK\x03\x04 half a zip")
    np.savez(tmp_path / "ints.npz", audio=np.ones((50, 130), np.int64), video=good.video)
    np.savez(tmp_path / "nan.npz", audio=np.full((50, 130), np.nan, np.float32), video=good.video)
    names = ["random", "empty", "torn", "ints", "nan"]
    predictions = session.predict([tmp_path / f"{n}.npz" for n in names] + [write_npz(good, tmp_path / "good.npz")])
    reasons = {p.clip_id: p.reason for p in predictions if p.status is Status.FAILED}
    assert sorted(reasons) == sorted(names)
    assert reasons["random"] == "not a feature file (not a zip archive)"
    assert reasons["empty"] == "not a feature file (empty file)"
    assert reasons["torn"].startswith("not a feature file (damaged zip archive")
    assert "audio features must be floating point, got int64" in reasons["ints"]
    assert "non-finite" in reasons["nan"]
    assert predictions[-1].status is Status.OK
    # features read from a file by another loader (auxformer-infer's) fail as files do, not raise
    wide = write_npz(feature_clip("wide", 50, 15, video_dim=VIDEO_DIM + 1), tmp_path / "wide.npz")
    (p,) = session.predict([load_npz(wide)])
    assert p.status is Status.FAILED and f"expects {VIDEO_DIM}" in p.reason
    # the same arrays given directly are the caller's bug: they raise
    with pytest.raises(FeatureError, match="floating point"):
        session.predict([{"audio": np.ones((50, 130), np.int32), "video": good.video}])


PEAK_MEMORY = Path(__file__).parents[1] / "benchmarks" / "peak_memory.py"


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in kilobytes on Linux only")
def test_a_folder_with_huge_clips_stays_under_the_memory_bound():
    """Good clips, a 59-s clip and a 200000-frame `.npz`, predicted in a fresh process (README, "Runtime")."""
    command = [sys.executable, str(PEAK_MEMORY), str(tiny_export().path), "--budget-gib", str(RUN_BUDGET / GIB)]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rows, peak = result["rows"], result["peak_rss"]
    print(f"peak RSS {peak / GIB:.2f} GiB with a budget of {RUN_BUDGET / GIB:.2f} GiB")
    assert result["budget"] == RUN_BUDGET and len(rows) == 8
    status, reason = rows.pop("huge")
    assert status == "failed" and "200000 audio" in reason and "memory budget" in reason
    assert rows.pop("minute") == ["ok", ""]  # the 59-s clip fits the budget and runs
    assert all(row == ["ok", ""] for row in rows.values())
    assert peak < RSS_BOUND
    assert ModelShape.of(tiny_export().manifest).batch_bytes(1, *MINUTE) < RUN_BUDGET


def test_the_budget_is_a_session_option():
    small = Session.load(tiny_export().path, device="cpu", memory=MemoryBudget(bytes=1))
    (p,) = small.predict([feature_clip("a", 10, 3)])
    assert p.status is Status.FAILED and "over the memory budget of 0.00 GiB" in p.reason
