"""The views of a timeline (the plot and the overlay video) and the long recording they are tried on."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")
pytest.importorskip("matplotlib")

import av
import cv2

from auxformer.runtime.contracts import Status
from auxformer.runtime.overlay import OverlaySettings, SegmentLookup, write_overlay
from auxformer.runtime.segment import Segment
from auxformer.runtime.timeline_plot import DPI, FIGSIZE, MAX_BINS, STRIP, bin_segments, write_timeline_plot
from auxformer.runtime.timeline_style import label_colors
from auxformer.train.demo_corpus import LABELS
from auxformer.train.long_recording import NOISE_FLOOR, write_long_recording

from .media_factory import make_clip

LABEL_LIST = list(LABELS)


def window(start: float, end: float, label: str | None, status: Status = Status.OK, reason: str = "") -> Segment:
    """A segment as a session would give it: `label` at 0.7, the rest shared; None: no prediction."""
    if label is None:
        return Segment(start, end, status if status is not Status.OK else Status.EMPTY, reason)
    probabilities = {name: 0.7 if name == label else 0.3 / (len(LABEL_LIST) - 1) for name in LABEL_LIST}
    return Segment(start, end, status, reason, label, probabilities, {}, {"audio": True, "video": True})


def windows_of(truth, window_s: float = 1.0, hop: float = 0.5, failed: tuple[float, float] | None = None):
    """Windows over a long recording, each labelled with the truth at its centre."""
    out = []
    for start in np.arange(0.0, truth.duration - window_s + 1e-9, hop):
        centre = start + window_s / 2
        if failed and failed[0] <= centre < failed[1]:
            out.append(window(start, start + window_s, None, Status.FAILED, "corrupt media"))
        else:
            out.append(window(start, start + window_s, truth.label_at(centre)))
    return out


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def count_color(image_rgb: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int(np.all(image_rgb == np.array(rgb, np.uint8), axis=-1).sum())


# --- the plot ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [19, 7200])  # 10 s and 1 h at a 0.5-s hop
def test_plot_is_a_png_of_the_stated_size_for_short_and_long_timelines(tmp_path, count):
    segments = [window(0.5 * i, 0.5 * i + 1.0, LABEL_LIST[(6 * i) // count]) for i in range(count)]
    failed_at = range(count // 3, count // 3 + max(2, count // 20))
    for i in failed_at:
        segments[i] = window(0.5 * i, 0.5 * i + 1.0, None, Status.FAILED, "corrupt media")
    path = write_timeline_plot(reversed(segments), tmp_path / "timeline.png", title="test")
    assert path == tmp_path / "timeline.png"
    assert png_size(path) == (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))
    image = cv2.imread(str(path))[..., ::-1]
    colors = label_colors(LABEL_LIST)
    for label in LABEL_LIST:  # each label held a sixth of the time: its colour is drawn
        assert count_color(image, colors[label]) > 500, label
    failed_rgb = dict(STRIP)["failed"]
    assert count_color(image, failed_rgb) > 100
    # without failures nothing is drawn in the failure colour
    clean = [s for i, s in enumerate(segments) if i not in failed_at]
    image = cv2.imread(str(write_timeline_plot(clean, tmp_path / "clean.png")))[..., ::-1]
    assert count_color(image, failed_rgb) < 20
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


def test_plot_bins_tile_overlapping_windows_and_average_long_ones():
    few = [window(0.5 * i, 0.5 * i + 1.0, "happy") for i in range(9)]
    bins = bin_segments(few, LABEL_LIST)
    assert not bins.averaged and len(bins.lo) == 9
    assert bins.lo[0] == 0.0 and bins.hi[-1] == 5.0
    np.testing.assert_allclose(bins.hi[:-1], bins.lo[1:])  # blocks meet, never overlap
    many = [window(i, i + 2.0, "anger" if i < 1000 else "sad") for i in range(2000)]
    many[1500] = window(1500, 1502, None, Status.FAILED)
    bins = bin_segments(many, LABEL_LIST)
    assert bins.averaged and len(bins.lo) <= MAX_BINS and bins.windows == 2000
    centre = (bins.lo + bins.hi) / 2
    top = np.array(LABEL_LIST)[bins.argmax]
    assert set(top[centre < 990]) == {"anger"} and set(top[centre > 1010]) == {"sad"}
    failed = bins.presence[:, [name for name, _ in STRIP].index("failed")]
    assert failed.max() > 0 and failed[np.abs(centre - 1501) > 10].max() == 0
    np.testing.assert_allclose(np.nansum(bins.probabilities, axis=1)[bins.predicted], 1.0, atol=1e-9)


def test_plot_of_no_segments_still_writes(tmp_path):
    assert png_size(write_timeline_plot([], tmp_path / "empty.png", labels=LABEL_LIST))[0] > 0


def test_views_import_neither_torch_nor_matplotlib():
    code = (
        "import sys, auxformer.runtime.timeline_plot, auxformer.runtime.overlay; "
        "print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    from auxformer.common.optional import MissingDependency

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(MissingDependency, match=r"pip install 'auxformer\[media\]'"):
        write_timeline_plot([window(0, 1, "happy")], tmp_path / "t.png")
    assert not (tmp_path / "t.png").exists()


def test_readme_pictures_are_small_pngs():
    images = Path(__file__).resolve().parents[1] / "docs" / "images"
    for name in ("timeline.png", "overlay_frame.png"):
        assert png_size(images / name)[0] >= 480 and (images / name).stat().st_size <= 200_000, name


# --- the long recording -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "talk.mp4"
    return write_long_recording(path, ["happy", None, "sad"], seconds_each=[2.0, 1.6, 2.4], seed=3)


def test_long_recording_ground_truth_matches_the_file(recording):
    assert [s.label for s in recording.stretches] == ["happy", None, "sad"]
    assert [(s.start, s.end) for s in recording.stretches] == [(0.0, 2.0), (2.0, 3.6), (3.6, 6.0)]
    assert recording.duration == 6.0 and recording.changes == [2.0, 3.6]
    assert recording.per_second() == ["happy", "happy", None, None, "sad", "sad"]
    assert recording.label_at(3.59) is None and recording.label_at(3.6) == "sad" and recording.label_at(6.0) is None
    from auxformer.runtime.media.decode import decode

    media = decode(recording.path)
    assert media.notes == []
    assert len(media.frames) == 150 and media.duration == pytest.approx(6.0, abs=0.05)
    assert len(media.audio) == pytest.approx(6.0 * 16000, abs=1600)
    rate, fps = media.audio_rate, 25
    for stretch in recording.stretches:  # each stretch is where the truth says: voice and face, or neither
        audio = media.audio[round(stretch.start * rate) + 800 : round(stretch.end * rate) - 800]
        rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
        frames = media.frames[round(stretch.start * fps) : round(stretch.end * fps)]
        assert len(frames) == round((stretch.end - stretch.start) * fps)
        detail = float(np.mean([cv2.Laplacian(f.grey(), cv2.CV_64F).var() for f in frames]))
        if stretch.label is None:
            assert rms < 3 * NOISE_FLOOR and detail < 5, stretch
        else:
            assert rms > 5 * NOISE_FLOOR and detail > 20, stretch  # "sad" speaks at -12 dB


def test_long_recording_corrupt_stretch_fails_there_only(tmp_path):
    recording = write_long_recording(
        tmp_path / "bad.mp4", ["neutral", "anger"], seconds_each=2.0, corrupt=(1.0, 1.6), keyframe_seconds=0.5
    )
    assert recording.corrupt == (1.0, 1.6)
    failed, decoded = {"video": [], "audio": []}, {"video": 0, "audio": 0}
    with av.open(str(recording.path)) as container:
        for packet in container.demux():
            if packet.pts is None:
                continue
            t = float(packet.pts * packet.time_base)
            try:
                decoded[packet.stream.type] += len(packet.decode())
            except av.FFmpegError:
                failed[packet.stream.type].append(t)
    assert failed["video"] and failed["audio"]
    for times in failed.values():
        assert min(times) >= 1.0 - 0.05 and max(times) < 1.6
    assert decoded["video"] >= 100 - 15 - 13  # all but the damage and what waits for the next keyframe


def test_long_recording_refuses_unknown_emotions(tmp_path):
    with pytest.raises(ValueError, match="unknown emotion"):
        write_long_recording(tmp_path / "x.mp4", ["joy"])
    with pytest.raises(ValueError, match="2 emotions but 3"):
        write_long_recording(tmp_path / "x.mp4", ["happy", "sad"], seconds_each=[1, 2, 3])
    assert not list(tmp_path.iterdir())


# --- the overlay ------------------------------------------------------------------------------------


def stream_facts(path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return {
            "frames": frames,
            "size": (video.codec_context.width, video.codec_context.height),
            "audio": len(container.streams.audio),
            "duration": container.duration / av.time_base,
        }


def banner_color(frame: np.ndarray, banner: int = 14) -> np.ndarray:
    return np.median(frame[:banner].reshape(-1, 3), axis=0)


def test_overlay_keeps_frames_duration_and_audio_and_draws_the_current_label(tmp_path, recording):
    segments = windows_of(recording)
    result = write_overlay(recording.path, segments, tmp_path / "overlay.mp4")
    source, out = stream_facts(recording.path), stream_facts(result.path)
    assert abs(out["frames"] - source["frames"]) <= 1 and result.frames == source["frames"]
    assert out["duration"] == pytest.approx(source["duration"], abs=0.1)
    assert out["audio"] == 1 and result.audio == "copied" and out["size"] == source["size"]
    colors = label_colors(LABEL_LIST)
    with av.open(str(result.path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    grey = np.array([90, 90, 90])
    seen = {}
    for t, expected in ((0.5, "happy"), (1.5, "happy"), (2.8, None), (4.5, "sad"), (5.5, "sad")):
        color = banner_color(frames[round(t * 25)])
        target = np.array(colors[expected]) if expected else grey
        assert np.abs(color - target).max() < 40, (t, expected, color)
        seen[t] = color
    assert np.abs(seen[0.5] - seen[4.5]).max() > 60  # the banner changed with the label
    # below the banner and the bars the frame is the source's
    with av.open(str(recording.path)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(frames[0][-40:].astype(int) - first[-40:]).mean() < 4


def test_overlay_of_a_silent_video_and_failed_windows(tmp_path):
    source = make_clip(tmp_path / "silent.mp4", seconds=1.2, with_audio=False, size=160)
    segments = [window(0.0, 0.6, "anger"), window(0.6, 1.2, None, Status.FAILED, "corrupt media")]
    result = write_overlay(source, segments, tmp_path / "out.mkv")
    facts = stream_facts(result.path)
    assert facts["audio"] == 0 and result.audio == "none" and facts["frames"] == 30
    with av.open(str(result.path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert np.abs(banner_color(frames[5]) - np.array(label_colors(LABEL_LIST)["anger"])).max() < 40
    assert np.abs(banner_color(frames[25]) - 90).max() < 25  # grey: no prediction


def test_overlay_reencodes_audio_the_container_cannot_take_and_turns_rotated_video_upright(tmp_path):
    source = make_clip(tmp_path / "phone.mov", seconds=1.0, size=160, height=96, rotation=-90)
    wav_audio = make_clip(tmp_path / "pcm.avi", seconds=1.0, size=96)
    rotated = write_overlay(source, [window(0, 1, "fear")], tmp_path / "upright.mp4")
    assert stream_facts(source)["size"] == (96, 160)  # stored sideways
    assert stream_facts(rotated.path)["size"] == (160, 96)  # shown upright
    pcm = write_overlay(wav_audio, [window(0, 1, "fear")], tmp_path / "pcm.mp4", settings=OverlaySettings(bars=False))
    facts = stream_facts(pcm.path)
    assert pcm.audio == "re-encoded" and facts["audio"] == 1
    assert facts["duration"] == pytest.approx(1.0, abs=0.1)


def test_overlay_skips_a_corrupt_stretch_and_keeps_the_rest(tmp_path):
    recording = write_long_recording(
        tmp_path / "bad.mp4", ["neutral", "anger"], seconds_each=2.0, corrupt=(1.0, 1.6), keyframe_seconds=0.5
    )
    segments = windows_of(recording, failed=recording.corrupt)
    result = write_overlay(recording.path, segments, tmp_path / "out.mp4")
    assert result.skipped_packets >= 10
    facts = stream_facts(result.path)
    assert facts["frames"] == result.frames and 100 - 30 <= result.frames < 100
    assert facts["audio"] == 1


def test_overlay_refuses_what_it_cannot_write_or_draw_on(tmp_path):
    from auxformer.runtime.media.decode import MediaError

    voice = make_clip(tmp_path / "voice.wav", seconds=0.5)
    with pytest.raises(MediaError, match="no video stream"):
        write_overlay(voice, [], tmp_path / "out.mp4")
    with pytest.raises(ValueError, match="use one of"):
        write_overlay(voice, [], tmp_path / "out.gif")
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".*.tmp"))


def test_segment_lookup_takes_the_covering_window_with_the_nearest_centre():
    segments = [window(0.0, 2.0, "anger"), window(1.0, 3.0, "sad"), window(2.0, 4.0, "happy"), window(6, 7, "fear")]
    lookup = SegmentLookup(segments)

    def label(t: float) -> str | None:
        i = lookup.at(t)
        return lookup.segments[i].label if i is not None else None

    assert [label(t) for t in (0.0, 1.0, 1.49)] == ["anger"] * 3
    assert [label(t) for t in (1.5, 2.0, 2.25)] == ["sad"] * 3
    assert [label(t) for t in (2.5, 3.75)] == ["happy"] * 2
    assert label(4.0) is None and label(5.0) is None and label(6.5) == "fear" and label(7.0) is None
    assert SegmentLookup([]).at(1.0) is None
    # frame times on the hop's grid fall halfway between centres: the tie goes to the later window
    grid = SegmentLookup([window(0.4 * k, 0.4 * k + 1.2, LABEL_LIST[k % 6]) for k in range(40)])
    for frame in range(20, 300, 10):  # 25-fps frames at 0.8, 1.2, ... s: halfway between centres 0.6, 1.0, ...
        t = frame * 0.04
        assert grid.segments[grid.at(t)].start == pytest.approx(t + 0.2 - 0.6), t


def test_overlay_of_odd_sized_video_is_cut_to_even_sizes(tmp_path):
    """H.264 in 4:2:0 needs even sizes: a 97x65 source (FFV1 allows odd ones) comes out 96x64."""
    source = tmp_path / "odd.mkv"
    with av.open(str(source), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 97, 65, "yuv420p"
        for i in range(10):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((65, 97, 3), 20 * i, np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    result = write_overlay(source, [], tmp_path / "odd_out.mp4")
    assert result.frames == 10
    with av.open(str(result.path)) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (96, 64)
