"""Decoded frames as Pictures: grey straight from the luma plane equals the grey of their RGB, for
video-range and full-range streams and for turned phone video; scaled frames hold RGB."""

from __future__ import annotations

import numpy as np
import pytest

from auxformer.runtime.media.decode import decode
from auxformer.runtime.media.picture import Picture, as_grey, as_rgb

from .media_factory import make_clip

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")


def write_frames(path, codec: str, pix_fmt: str, count: int = 4, size: tuple[int, int] = (96, 64)) -> None:
    rng = np.random.default_rng(0)
    w, h = size
    ramp = np.linspace(0, 255, w)[None, :, None] * np.linspace(0.2, 1.0, h)[:, None, None]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        for i in range(count):
            rgb = np.clip(ramp * [1.0, 0.6, 0.3] + rng.normal(0, 20, (h, w, 3)) + 10 * i, 0, 255).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))


def assert_grey_of_rgb(pictures: list[Picture]) -> None:
    assert pictures
    for p in pictures:
        grey, rgb = p.grey(), p.rgb()
        assert grey.shape == rgb.shape[:2] == p.shape[:2] and grey.dtype == rgb.dtype == np.uint8
        difference = np.abs(grey.astype(int) - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        # a pixel whose RGB is clipped at 0 or 255 lost what its luma still has; swscale's RGB runs
        # about one level dark of the exact video-range expansion
        clipped = (rgb.max(axis=2) == 255) | (rgb.min(axis=2) == 0)
        assert difference[~clipped].max() <= 3 and difference.mean() < 1.6


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt"), [("v.mp4", "libx264", "yuv420p"), ("j.mkv", "mjpeg", "yuvj420p")]
)
def test_luma_grey_equals_the_grey_of_rgb(tmp_path, name, codec, pix_fmt):
    write_frames(tmp_path / name, codec, pix_fmt)
    media = decode(tmp_path / name)  # the container is closed: pictures keep their own planes
    assert_grey_of_rgb(media.frames)
    assert media.frames[0]._frame.format.name == pix_fmt  # the lazy path ran, not the RGB fallback


def test_turned_phone_video_greys_upright(tmp_path):
    media = decode(make_clip(tmp_path / "turned.mp4", seconds=0.3, size=96, height=128, rotation=90))
    assert {p.shape for p in media.frames} == {(128, 96, 3)}
    assert_grey_of_rgb(media.frames)


def test_scaled_frames_hold_rgb_and_arrays_pass_through(tmp_path):
    media = decode(make_clip(tmp_path / "big.mp4", seconds=0.3, size=160), max_side=80)
    first = media.frames[0]
    assert first._rgb is not None and first.shape == (80, 80, 3)
    assert as_rgb(first) is first.rgb() and np.asarray(first).shape == (80, 80, 3)
    rgb = first.rgb()
    assert as_rgb(rgb) is rgb
    np.testing.assert_array_equal(as_grey(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    np.testing.assert_array_equal(as_grey(first), as_grey(rgb))


def test_faces_from_pictures_match_faces_from_their_rgb(tmp_path):
    """The front end's fast paths (the detector's letterbox straight from the planes, crops cut from the
    luma) find the same faces and nearly the same expression embeddings as full RGB frames do."""
    from auxformer.runtime.media.face_embedders import build_embedder
    from auxformer.runtime.media.faces import build_detector, track_faces

    pictures = decode(make_clip(tmp_path / "face.mp4", seconds=0.6, size=192)).frames
    arrays = [p.rgb() for p in pictures]
    detector, embedder = build_detector("blazeface"), build_embedder("expression")
    fast, slow = track_faces(pictures, detector, every=3), track_faces(arrays, detector, every=3)
    assert fast.valid.all() and slow.valid.all()
    side = slow.boxes[:, 2] - slow.boxes[:, 0]
    assert np.abs(fast.boxes - slow.boxes).max() < 0.05 * side.min()
    a, b = embedder(pictures, slow), embedder(arrays, slow)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99
