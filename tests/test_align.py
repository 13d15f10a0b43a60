"""Face alignment: eyes levelled and put on the template's places; the box crop without eyes."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from auxformer.runtime.media.align import FER_TEMPLATE, align_face, crop_square, eye_transform  # noqa: E402


def synthetic_face(side: int, angle_deg: float, eye_gap: float, centre=(0.5, 0.45)) -> tuple[np.ndarray, np.ndarray]:
    """A grey frame with a light face disc and two dark eyes `eye_gap` pixels apart, the head turned
    by `angle_deg` in the image plane; returns (frame, eye centres image-left first)."""
    frame = np.full((side, side), 40, np.uint8)
    cx, cy = centre[0] * side, centre[1] * side
    theta = np.deg2rad(angle_deg)
    along = np.array([np.cos(theta), np.sin(theta)])  # from the left eye towards the right one
    down = np.array([-np.sin(theta), np.cos(theta)])
    middle = np.array([cx, cy])
    cv2.circle(frame, (round(cx + 0.4 * eye_gap * down[0]), round(cy + 0.4 * eye_gap * down[1])),
               round(1.1 * eye_gap), 200, -1, lineType=cv2.LINE_AA)  # fmt: skip
    eyes = np.stack([middle - along * eye_gap / 2, middle + along * eye_gap / 2])
    for x, y in eyes:
        cv2.circle(frame, (round(x * 16), round(y * 16)), round(0.12 * eye_gap * 16), 0, -1, cv2.LINE_AA, shift=4)
    return frame, eyes.astype(np.float32)


def dark_blobs(crop: np.ndarray) -> np.ndarray:
    """Centroids of the two darkest blobs of a crop, left one first."""
    dark = (crop < 20).astype(np.uint8)  # the eyes (0), not the background (40) or the face (200)
    _, _, stats, centroids = cv2.connectedComponentsWithStats(dark)
    order = np.argsort(stats[1:, cv2.CC_STAT_AREA])[::-1][:2] + 1
    found = centroids[order]
    return found[np.argsort(found[:, 0])]


@pytest.mark.parametrize(
    ("side", "angle", "gap"),
    [(480, 25.0, 90.0), (480, -30.0, 160.0), (240, 12.0, 20.0), (320, 0.0, 60.0)],
)
def test_alignment_levels_the_eyes_and_puts_them_on_the_template(side, angle, gap):
    frame, eyes = synthetic_face(side, angle, gap)
    box = np.array([eyes[:, 0].min() - gap, eyes[:, 1].min() - gap, eyes[:, 0].max() + gap, eyes[:, 1].max() + gap])
    crop = align_face(frame, box, eyes, 64, 0.2)
    assert crop.shape == (64, 64) and crop.dtype == np.uint8
    left, right = dark_blobs(crop)
    assert abs(left[1] - right[1]) < 1.0  # level
    want = np.array([FER_TEMPLATE.left, FER_TEMPLATE.right]) * 64
    np.testing.assert_allclose([left, right], want, atol=1.0)
    # the box crop of the same turned face keeps the tilt: the check above can fail
    tilted = dark_blobs(crop_square(frame, box, 0.2, 64))
    if abs(angle) > 5:
        assert abs(tilted[0][1] - tilted[1][1]) > 3.0


def test_eye_transform_is_a_similarity_onto_the_template():
    eyes = np.array([[100.0, 220.0], [180.0, 160.0]])
    m = eye_transform(eyes, 64)
    mapped = (m @ np.c_[eyes, np.ones(2)].T).T
    np.testing.assert_allclose(mapped, np.array([FER_TEMPLATE.left, FER_TEMPLATE.right]) * 64, atol=1e-9)
    assert m[0, 0] == pytest.approx(m[1, 1]) and m[0, 1] == pytest.approx(-m[1, 0])  # no shear


@pytest.mark.parametrize("eyes", [None, np.full((2, 2), np.nan, np.float32), np.ones((2, 2), np.float32)])
def test_without_usable_eyes_the_box_crop_is_used(eyes):
    frame = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    box = np.array([80.0, 40.0, 180.0, 150.0])
    np.testing.assert_array_equal(align_face(frame, box, eyes, 64, 0.2), crop_square(frame, box, 0.2, 64))


def test_alignment_works_on_colour_frames_and_at_the_border():
    frame, eyes = synthetic_face(200, 15.0, 60.0, centre=(0.1, 0.1))  # half the face outside the frame
    rgb = np.repeat(frame[..., None], 3, axis=2)
    crop = align_face(rgb, np.array([0.0, 0.0, 60.0, 60.0]), eyes, 64, 0.2)
    assert crop.shape == (64, 64, 3)
    np.testing.assert_array_equal(crop[..., 0], align_face(frame, np.zeros(4), eyes, 64, 0.2))
