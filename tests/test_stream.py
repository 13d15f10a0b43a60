"""Session.stream and `auxformer-infer --timeline`: windows over long files and live sources, running
features against whole-file extraction, voice activity, faults, Ctrl-C, and (slow) a trained demo
model's timeline against known emotion changes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from auxformer.runtime import Session, Status
from auxformer.runtime.features import FeatureExtractor, FeatureSettings
from auxformer.runtime.media.decode import decode
from auxformer.runtime.stream.audio import RunningAudio
from auxformer.runtime.stream.segments import StreamSettings
from auxformer.runtime.stream.vad import VadSettings, VoiceActivity
from auxformer.runtime.timeline_files import read_segments
from auxformer.train.long_recording import LongRecording, loop_file, write_long_recording
from auxformer.train.media_demo import MediaDemoSpec
from auxformer.train.media_writer import write_clip

from .export_support import media_model
from .runtime_support import scratch_dir

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs need POSIX")


@pytest.fixture(scope="module")
def session():
    with Session.load(media_model(scratch_dir())) as s:
        yield s


SMALL = MediaDemoSpec(size=96)  # the demo's face, in smaller frames: quicker to write and to read


@pytest.fixture(scope="module")
def recording():
    """12 s: anger, happy, sad, 4 s each, 96 px frames."""
    return _three_emotions(scratch_dir() / "long.mp4")


def _three_emotions(path: Path) -> tuple[Path, LongRecording]:
    return path, write_long_recording(path, ["anger", "happy", "sad"], 4.0, spec=SMALL)


def test_windows_tile_a_file_and_overlap_by_the_hop(session, recording):
    path, plan = recording
    segments = list(session.stream(path, window=3.0, hop=1.0))
    starts = [s.start for s in segments]
    assert starts == [float(k) for k in range(len(segments))]
    assert all(s.end - s.start == pytest.approx(3.0) for s in segments[:-1])
    assert segments[-1].end == pytest.approx(plan.duration, abs=0.1)
    assert all(s.ok and s.present == {"audio": True, "video": True} for s in segments)
    assert all(set(s.heads) == {"av", "audio", "video"} for s in segments)


def test_the_default_hop_is_two_thirds_of_the_window(session, recording):
    path, _ = recording
    stream = session.stream(path, window=3.0)
    starts = [s.start for s in stream]
    assert stream.hop == 2.0 and starts == [2.0 * k for k in range(len(starts))] and len(starts) >= 5


# openSMILE's cDeltaRegression with `onlyInSegments` (ComParE's deltas of the pitch and voice-quality
# descriptors) divides by a normaliser it never resets: a member `norm` that grows by i*i for every valid
# regression pair since the run began. These six deltas therefore shrink roughly as 1 / (voiced frames since
# the start of the openSMILE run), and a row computed with `audio_left` seconds of context is larger than
# the same row in one pass over the whole file, never smaller, by the ratio of the two runs' lengths.
RUNNING_NORM_DELTAS = (
    "F0final_sma_de",
    "voicingFinalUnclipped_sma_de",
    "jitterLocal_sma_de",
    "jitterDDP_sma_de",
    "shimmerLocal_sma_de",
    "logHNR_sma_de",
)


def test_running_audio_matches_whole_file_descriptors(recording):
    """Block borders do not change the descriptors: the running rows against one openSMILE pass. All but
    the six running-normaliser deltas match to float precision (measured: worst row 1e-8 relative); those
    six keep their sign and are larger by the ratio of the runs' lengths (measured: 1.0 to 3.8 on this
    12-s file with 3 s of left context; 1.0 to 1.02 with 10 s)."""
    path, _ = recording
    media = decode(path)
    extractor = FeatureExtractor(FeatureSettings())
    whole = extractor.audio.rows(media.audio, media.audio_rate)
    fps = extractor.settings.audio_fps
    every = VoiceActivity(VadSettings("none"), extractor.audio.names, fps)
    s = StreamSettings()
    running = RunningAudio(extractor.audio, every, media.audio_rate, fps, 1.0, s.audio_left, s.audio_right)
    jobs = [j for k in range(0, len(media.audio), 1024) for j in running.push(0.0, media.audio[k : k + 1024])]
    rows = [running.compute(job).values for job in [*jobs, *running.finish()]]
    streamed = np.concatenate(rows)
    assert len(whole) == len(streamed)
    finite = np.isfinite(whole).all(axis=1)
    whole, streamed = whole[finite], streamed[finite]
    names = extractor.audio.names
    drifting = np.isin(names, RUNNING_NORM_DELTAS)
    assert drifting.sum() == len(RUNNING_NORM_DELTAS)
    local = ~drifting
    diff = np.abs(streamed[:, local] - whole[:, local])
    scale = np.abs(whole[:, local]).mean(axis=0) + 1e-6  # each descriptor's typical size
    per_row = (diff / scale).mean(axis=1)
    nonzero = np.abs(whole[:, drifting]) > 1e-9
    ratio = streamed[:, drifting][nonzero] / whole[:, drifting][nonzero]
    print(
        f"running vs whole-file descriptors: worst row {per_row.max():.2e} over {local.sum()} descriptors; "
        f"running-normaliser deltas larger by {ratio.min():.3f} to {ratio.max():.3f}"
    )
    assert per_row.max() < 1e-4
    assert ratio.min() > 0.999 and ratio.max() < 1 + len(media.audio) / media.audio_rate / s.audio_left


def test_a_model_on_16_ms_audio_frames_streams_rows_at_its_own_rate(recording, tmp_path):
    """A model whose front end steps openSMILE by 16 ms (62.5 rows/s, the paper's) gets windows of 62.5
    rows a second, each the whole-file rows at its own times (the stream once sliced at 100 rows/s)."""
    from .runtime_support import with_manifest

    path, _ = recording
    settings = FeatureSettings(video_embedder="pixels", pixels_size=4, audio_step_ms=16)  # media_model's, at 16 ms
    model = with_manifest(
        media_model(scratch_dir()), tmp_path / "model16.onnx", features={"settings": settings.to_dict()}
    )
    whole = FeatureExtractor(settings).audio.rows(decode(path).audio, settings.audio_rate)
    local = ~np.isin(FeatureExtractor(settings).audio.names, RUNNING_NORM_DELTAS)
    seen = []
    with Session.load(model) as session:
        predict = session.predict
        session.predict = lambda clips, **kw: predict(seen.extend(clips) or clips, **kw)  # type: ignore[method-assign]
        segments = list(session.stream(path, window=3.0, hop=1.0, vad=VadSettings("none")))
    assert len(seen) == len(segments) and all(s.ok for s in segments)
    for clip in seen[:-2]:  # the last windows are cut short by the file's end
        start = clip.info["start"]
        first = round(start * settings.audio_fps)
        assert len(clip.audio) == pytest.approx(3.0 * 62.5, abs=1)
        expected = whole[first : first + len(clip.audio)]
        finite = np.isfinite(expected).all(axis=1)
        scale = np.abs(whole[np.isfinite(whole).all(axis=1)][:, local]).mean(axis=0) + 1e-6
        diff = np.abs(clip.audio[finite][:, local] - expected[finite][:, local]) / scale
        assert diff.mean(axis=1).max() < 1e-3, f"the window at {start} s is not the file's rows at {start} s"


def _noise_then_voice(path: Path) -> Path:
    """A face throughout; 5 s of background noise only, then 3 s of the demo voice on that noise (the
    second without voice keeps the voice detector's hangover out of the noise's windows)."""
    speaking = write_long_recording(path.with_suffix(".talk.mp4"), ["happy"], 8.0, spec=SMALL)
    media = decode(speaking.path)
    audio = media.audio
    rng = np.random.default_rng(1)
    noise = 0.02 * rng.standard_normal(len(audio)).astype(np.float32)
    cut = 5 * media.audio_rate
    audio = np.concatenate([noise[:cut], audio[cut:] + noise[cut:]])
    write_clip(path, [f.rgb() for f in media.frames], SMALL.fps, audio, media.audio_rate)
    return path


def test_noise_without_speech_is_no_audio(session, tmp_path):
    segments = list(session.stream(_noise_then_voice(tmp_path / "noise.mp4"), window=2.0, hop=2.0))
    noise, voice = [s for s in segments if s.end <= 4.0], [s for s in segments if s.start >= 6.0]
    assert noise and voice
    assert all(not s.present["audio"] and s.heads["audio"] is None and s.present["video"] for s in noise)
    assert all(s.present["audio"] and s.heads["audio"] is not None for s in voice)


def test_a_corrupt_stretch_fails_its_windows_only(session, recording, tmp_path):
    path, _ = recording
    data = bytearray(path.read_bytes())
    a, b = int(len(data) * 0.45), int(len(data) * 0.55)
    data[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    segments = list(session.stream(bad, window=1.0, hop=1.0))
    failed = [s for s in segments if s.status is Status.FAILED]
    assert failed and all("corrupt" in s.reason for s in failed)
    assert segments[0].ok and segments[-1].ok
    assert failed[0].start > 2.0 and failed[-1].end < 10.0


def _paced_writer(data: bytes, fifo: Path, seconds: float, stall_after: float | None = None) -> threading.Thread:
    """Feeds `data` into `fifo` at real-time speed (`seconds` for all of it); with `stall_after`, stops
    sending after that fraction and keeps the FIFO open (a camera gone quiet)."""

    def write() -> None:
        with open(fifo, "wb") as f:
            step = max(1, len(data) // int(seconds * 10))
            for k in range(0, len(data), step):
                if stall_after is not None and k >= stall_after * len(data):
                    time.sleep(30)
                    return
                f.write(data[k : k + step])
                f.flush()
                time.sleep(0.1)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def streamable():
    """The recording as Matroska (readable from a pipe: no index at the end to seek for)."""
    return _three_emotions(scratch_dir() / "long.mkv")


def test_a_live_fifo_yields_segments_while_its_writer_runs(session, streamable, tmp_path):
    path, plan = streamable
    fifo = tmp_path / "live.fifo"
    os.mkfifo(fifo)
    writer = _paced_writer(path.read_bytes(), fifo, plan.duration)
    stream = session.stream(fifo, window=2.0, hop=1.0, stall_timeout=10.0)
    assert stream.live
    arrivals = []
    for segment in stream:
        arrivals.append((segment, writer.is_alive()))
    assert len(arrivals) >= 8
    during = [s for s, alive in arrivals if alive]
    assert len(during) >= 4, "segments come while the source is still being written"
    assert all(s.ok for s, _ in arrivals)


def test_a_stalled_source_ends_with_a_clear_status_within_the_timeout(session, streamable, tmp_path):
    path, plan = streamable
    fifo = tmp_path / "stall.fifo"
    os.mkfifo(fifo)
    _paced_writer(path.read_bytes(), fifo, plan.duration / 4, stall_after=0.5)
    segments = list(session.stream(fifo, window=1.0, hop=1.0, stall_timeout=2.0))
    # the writer keeps the FIFO open and silent for 30 s, then closes it (a normal end): a stream that ends
    # saying "stalled" ended on its timeout, long before that
    assert segments[-1].status is Status.FAILED and "stalled" in segments[-1].reason
    assert any(s.ok for s in segments[:-1])


def test_a_source_that_never_opens_ends_within_the_timeout(session, tmp_path):
    fifo = tmp_path / "nobody.fifo"
    os.mkfifo(fifo)  # no writer ever opens it
    t0 = time.monotonic()
    segments = list(session.stream(fifo, stall_timeout=1.0))
    assert time.monotonic() - t0 < 20
    assert len(segments) == 1 and segments[0].status is Status.FAILED and "stalled" in segments[0].reason


def test_a_missing_file_is_one_failed_segment(session, tmp_path):
    (segment,) = list(session.stream(tmp_path / "absent.mp4"))
    assert segment.status is Status.FAILED and "no such file" in segment.reason


def _infer(*args: str, **kwargs) -> subprocess.Popen:
    code = "from auxformer.runtime.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs
    )


def test_the_timeline_command_writes_a_row_per_window(tmp_path, recording):
    path, _ = recording
    model = media_model(tmp_path)
    out = tmp_path / "out"
    proc = _infer(str(path), "--timeline", "--model", str(model), "--out", str(out), "--window", "2", "--hop", "1")
    text = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, text
    rows = [json.loads(line) for line in (out / "timeline.jsonl").read_text().splitlines()]
    table = list(csv.DictReader((out / "timeline.csv").open()))
    assert len(rows) == len(table) == 11
    assert [float(r["start"]) for r in table] == [r["start"] for r in rows]
    assert {r["status"] for r in rows} == {"ok"} and "p_anger" in table[0]


def test_sigint_during_a_file_run_leaves_valid_timeline_files(tmp_path, recording):
    path, _ = recording
    long = loop_file(path, tmp_path / "looped.mp4", 120.0)
    model = media_model(tmp_path)
    out = tmp_path / "out"
    args = (str(long), "--timeline", "--model", str(model), "--out", str(out), "--hop", "1", "--batch-size", "1")
    proc = _infer(*args)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        jsonl = out / "timeline.jsonl"
        if jsonl.exists() and jsonl.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    text = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 130, text
    segments = list(read_segments(out / "timeline.jsonl"))
    table = list(csv.DictReader((out / "timeline.csv").open()))
    assert 3 <= len(segments) == len(table) and segments[-1].end < 120
    assert (out / "timeline.jsonl").read_bytes().endswith(b"\n")


def test_a_file_too_long_for_clip_mode_suggests_the_timeline(tmp_path, recording):
    path, _ = recording
    clip = FeatureExtractor(FeatureSettings(max_seconds=5.0))(path)
    assert clip.status is Status.FAILED and "--timeline" in clip.reason


# --- a trained demo model against known emotion changes (slow: trains one) ---------------------------


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """A small raw-media demo model, trained and exported here (a minute or two on a CPU)."""
    from auxformer.train.config import ModelConfig, TrainConfig
    from auxformer.train.media_demo import MediaDemoSpec, run_media_demo
    from auxformer.train.trainer import Trainer

    root = tmp_path_factory.mktemp("demo")
    corpus, _ = run_media_demo(root, MediaDemoSpec(speakers=8, clips_per_class=4), workers=2, progress=False)
    Trainer(corpus, TrainConfig(epochs=6, num_threads=1), ModelConfig(num_layers=1), root / "run", progress=False).fit()
    code = "from auxformer.export.cli import main; main()"
    subprocess.run([sys.executable, "-c", code, str(root / "run"), "--out", str(root / "export")], check=True)
    return root / "export" / "model.onnx"


@pytest.mark.slow
def test_a_timeline_follows_known_emotion_changes(demo_model, tmp_path):
    plan = write_long_recording(
        tmp_path / "six.mp4", ["anger", "happy", "sad", "neutral", "fear", "disgust"], 6.0, seed=5
    )
    with Session.load(demo_model) as session:
        stream = session.stream(tmp_path / "six.mp4")
        segments = list(stream)
    inside = [s for s in segments if s.ok and plan.label_at(s.start) == plan.label_at(s.end - 1e-6)]
    accuracy = np.mean([s.label == plan.label_at(s.start) for s in inside])
    # the timeline's label at a time: the window centred nearest to it; its changes against the true ones
    centres = np.array([(s.start + s.end) / 2 for s in segments])
    found = [
        (centres[k] + centres[k + 1]) / 2
        for k in range(len(segments) - 1)
        if segments[k].label != segments[k + 1].label
    ]
    near = [any(abs(f - c) <= stream.hop for f in found) for c in plan.changes]
    print(
        f"timeline accuracy {accuracy:.3f} over {len(inside)} windows inside one emotion; changes found within "
        f"one hop: {sum(near)}/{len(near)}"
    )
    assert accuracy >= 0.6
    assert sum(near) >= len(near) - 1


def test_a_signal_between_the_two_writes_keeps_jsonl_and_csv_in_step(tmp_path, monkeypatch):
    from auxformer.runtime.interrupt import Interrupted
    from auxformer.runtime.segment import Segment
    from auxformer.runtime.timeline_files import TimelineWriter

    segment = Segment(0.0, 1.5, Status.OK, label="a", probabilities={"a": 0.6, "b": 0.4}, heads={"av": None})
    writer = TimelineWriter(tmp_path, ["a", "b"], ["av"], "source.mp4")
    writer.write(segment)
    append = writer.csv.append
    calls = []

    def signal_on_first(data: bytes) -> None:
        calls.append(data)
        if len(calls) == 1:
            raise Interrupted(signal.SIGINT)  # as the handler raises it: after the jsonl row, before the csv one
        append(data)

    monkeypatch.setattr(writer.csv, "append", signal_on_first)
    with pytest.raises(Interrupted):
        writer.write(segment)
    writer.close()
    rows = list(read_segments(tmp_path / "timeline.jsonl"))
    table = list(csv.DictReader((tmp_path / "timeline.csv").open()))
    assert len(rows) == len(table) == 2 and table[1]["p_a"] == "0.600000"
