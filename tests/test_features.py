"""One clip -> features: shapes, frame rates, masks for missing audio and faces, face tracking."""

from __future__ import annotations

import numpy as np
import pytest

from auxformer.runtime.contracts import AUDIO_DIM, Status
from auxformer.runtime.features import FeatureSettings, extract
from auxformer.runtime.media.decode import decode as decode_media
from auxformer.runtime.media.faces import (
    HaarDetector,
    SsdDetector,
    fill_between,
    pick_face,
    smooth_keyframes,
    ssd_boxes,
    track_faces,
)
from auxformer.runtime.media.vggface import WEIGHTS_HELP

from .media_factory import make_clip


@pytest.fixture(scope="module")
def talking_head(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "talk.mp4", seconds=1.0, size=128, fps=25)


def test_clip_with_voice_and_face_has_both_modalities(talking_head):
    clip = extract(talking_head)
    assert clip.status is Status.OK and clip.reason == ""
    # ComParE LLDs at 100 fps over ~1 s (AAC padding adds a few frames)
    assert clip.audio.shape[1] == AUDIO_DIM and 95 <= clip.audio.shape[0] <= 115
    assert clip.audio_mask.all() and np.isfinite(clip.audio).all()
    # the default embedder: the expression model's 128-d embedding per frame with a face
    assert clip.video.shape == (25, 128) and clip.info["video_fps"] == pytest.approx(25.0)
    assert clip.info["face_rate"] >= 0.9
    faces = clip.video[clip.video_mask]
    assert np.isfinite(faces).all() and (np.abs(faces).sum(1) > 0).all()
    assert not clip.video[~clip.video_mask].any()


def test_pixels_embedder_gives_standardised_grey_crops(talking_head):
    clip = extract(talking_head, FeatureSettings(video_embedder="pixels"))
    assert clip.video.shape == (25, 64 * 64) and clip.info["face_rate"] >= 0.9
    faces = clip.video[clip.video_mask]
    np.testing.assert_allclose(faces.mean(1), 0, atol=1e-4)
    np.testing.assert_allclose(faces.std(1), 1, atol=1e-2)
    assert not clip.video[~clip.video_mask].any()


def test_expression_changes_the_face_features(tmp_path):
    still = extract(make_clip(tmp_path / "still.mp4", seconds=0.4, size=128, expression=None, seed=3))
    moving = extract(make_clip(tmp_path / "moving.mp4", seconds=0.4, size=128, expression="jaw_drop", seed=3))
    both = still.video_mask & moving.video_mask
    assert both.sum() >= 5
    middle = np.flatnonzero(both)[len(np.flatnonzero(both)) // 2]  # the expression peaks mid-clip
    assert np.abs(still.video[middle] - moving.video[middle]).mean() > 0.05


def test_video_without_audio_stream_marks_audio_missing(tmp_path):
    clip = extract(make_clip(tmp_path / "mute.avi", seconds=0.5, with_audio=False))
    assert clip.status is Status.NO_AUDIO and "no audio stream" in clip.reason
    assert clip.audio.shape == (0, AUDIO_DIM) and clip.video_mask.any()


def test_audio_only_file_marks_video_missing(tmp_path):
    clip = extract(make_clip(tmp_path / "voice.flac", seconds=0.5))
    assert clip.status is Status.NO_FACE and "no video stream" in clip.reason
    assert clip.video.shape == (0, 128) and clip.audio_mask.all()


def test_clip_without_a_face_keeps_frames_masked(tmp_path):
    clip = extract(make_clip(tmp_path / "empty_room.mp4", seconds=0.5, with_face=False))
    assert clip.status is Status.NO_FACE and "no face found in any of 12 frames" in clip.reason
    assert clip.video.shape == (12, 128) and not clip.video_mask.any() and not clip.video.any()


def test_silent_track_and_no_face_make_an_empty_clip(tmp_path):
    clip = extract(make_clip(tmp_path / "silence.mp4", seconds=0.5, with_face=False, silent=True))
    assert clip.status is Status.EMPTY
    assert "audio track is silent" in clip.reason and "no face" in clip.reason
    assert len(clip.audio_mask) > 0 and not clip.audio_mask.any() and not clip.audio.any()


class ScriptedDetector:
    """Returns a face on the frames listed (frames are their index), for tracking tests."""

    name = "scripted"

    def __init__(self, faces: dict[int, list[list[float]]]):
        self.faces = faces

    def detect(self, frame: int, near: np.ndarray | None = None) -> np.ndarray:
        found = self.faces.get(frame, [])
        return np.array([[*box, (box[2] - box[0]) * (box[3] - box[1])] for box in found], np.float32).reshape(-1, 5)


def test_tracking_interpolates_between_keyframes_and_masks_gaps():
    box = [10.0, 10.0, 50.0, 50.0]
    moved = [20.0, 10.0, 60.0, 50.0]
    # keyframes 0, 3, 6, 9, 11; the face is missed at 6
    detector = ScriptedDetector({0: [box], 3: [moved], 9: [box], 11: [box]})
    track = track_faces(list(range(12)), detector, every=3)  # type: ignore[arg-type]
    assert list(track.keyframes) == [0, 3, 6, 9, 11]
    assert track.valid.tolist() == [True] * 5 + [False] * 3 + [True] * 4  # 4 holds 3, 8 holds 9
    assert track.boxes[1, 0] > track.boxes[0, 0]  # moving towards the next keyframe's box


def test_pick_face_follows_the_previous_face_then_the_largest():
    small, large = [0, 0, 10, 10, 100], [50, 50, 90, 90, 1600]
    found = np.array([small, large], np.float32)
    assert pick_face(found, None).tolist() == large[:4]
    assert pick_face(found, np.array([1, 1, 11, 11], np.float32)).tolist() == small[:4]
    assert pick_face(np.zeros((0, 5), np.float32), None) is None


def test_smoothing_and_holding_rules():
    a, b = np.array([0, 0, 10, 10.0]), np.array([4, 0, 14, 10.0])
    smoothed = smooth_keyframes([a, b, None])
    np.testing.assert_allclose(smoothed[0], (2 * a + b) / 3)
    assert smoothed[2] is None
    track = fill_between(np.array([0, 4]), [a, None], 5, every=4)
    assert track.valid.tolist() == [True, True, True, False, False]


def test_ssd_output_parsing_and_missing_files(tmp_path):
    out = np.zeros((1, 1, 3, 7), np.float32)
    out[0, 0, 0] = [0, 1, 0.9, 0.1, 0.2, 0.5, 0.6]
    out[0, 0, 1] = [0, 1, 0.3, 0.0, 0.0, 1.0, 1.0]  # below the confidence threshold
    out[0, 0, 2] = [0, 1, 0.8, 0.6, 0.6, 0.6, 0.9]  # empty box
    boxes = ssd_boxes(out, 200, 100, 0.5)
    np.testing.assert_allclose(boxes, [[20, 20, 100, 60, 0.9]], rtol=1e-5)
    with pytest.raises(FileNotFoundError, match=r"res10_300x300_ssd_iter_140000\.caffemodel"):
        SsdDetector(tmp_path / "deploy.prototxt", None)


def test_vggface_without_weights_says_where_to_get_them():
    with pytest.raises(FileNotFoundError) as err:
        extract("unused.mp4", FeatureSettings(video_embedder="vggface"))
    assert str(err.value).startswith(WEIGHTS_HELP) and "vgg_face_dag.pth" in str(err.value)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="video_embedder"):
        FeatureSettings(video_embedder="resnet")
    with pytest.raises(ValueError, match="long_clips"):
        FeatureSettings(long_clips="split")
    assert FeatureSettings(video_embedder="pixels", pixels_size=32).video_dim == 1024
    assert FeatureSettings().video_embedder == "expression" and FeatureSettings().video_dim == 128
    assert FeatureSettings(expression_logits=True).video_dim == 128 + 7
    assert FeatureSettings.from_dict(FeatureSettings(detect_every=5).to_dict()).detect_every == 5


def test_rotated_phone_video_finds_the_face_as_often_as_its_upright_twin(tmp_path):
    """A portrait phone clip: pixels stored sideways, a display matrix saying how to turn them."""
    upright = extract(make_clip(tmp_path / "upright.mp4", seconds=0.8, size=96, height=128))
    turned = extract(make_clip(tmp_path / "phone.mp4", rotation=-90, seconds=0.8, size=96, height=128))
    assert upright.video_mask.mean() > 0.8
    assert turned.video_mask.mean() == pytest.approx(upright.video_mask.mean(), abs=0.05)


def test_faces_are_tracked_across_a_frame_size_change(tmp_path):
    """A stream whose frames shrink mid-way (a resolution or rotation change): the last face's place
    lies outside the new frames, and the detector searches them afresh."""
    small = [f.rgb() for f in decode_media(make_clip(tmp_path / "face.mp4", seconds=0.24, size=96)).frames]
    big = []
    for frame in small:  # the same face in the bottom-right corner of a larger frame
        canvas = np.full((256, 256, 3), 128, np.uint8)
        canvas[160:, 160:] = frame
        big.append(canvas)
    track = track_faces(big + small, HaarDetector(), every=3)
    assert track.valid[len(big) :].all()
    assert track.boxes[-1, 2] <= 96 and track.boxes[-1, 3] <= 96
