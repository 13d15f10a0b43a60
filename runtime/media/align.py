"""Face crops for the embedders: aligned by the eyes where the detector found them, else the box.

- `align_face`: with the two eye centres (image-left eye first) a similarity transform (rotation,
  one scale, shift) puts them on the template's places, so the eyes are level and the face has the
  same size and position in every crop, however the head is tilted or how far it is.
- `crop_square`: without eyes, the square around the detector's box widened by a margin.

The default template frames faces as FER2013 does (the expression model's training set: faces
registered so they are centred and fill about the same part of the image, the eyes a little above
the middle); see EyeTemplate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from auxformer.common.optional import require


@dataclass(frozen=True)
class EyeTemplate:
    """Where the eye centres land, as fractions of the crop's side (x, y).

    The default (eyes 0.32 of the side apart, at 0.38 of its height) is FER2013-like framing and was
    among the best of a sweep (eye distance 0.28 to 0.40, height 0.36 to 0.44) of the expression model's
    own call on real portraits turned by -30 to 30 degrees; closer framings (0.40) turned a neutral
    face angry or sad."""

    left: tuple[float, float] = (0.34, 0.38)  # the eye on the image's left
    right: tuple[float, float] = (0.66, 0.38)


FER_TEMPLATE = EyeTemplate()


def _cut(frame: np.ndarray, left: int, top: int, right: int, bottom: int) -> np.ndarray:
    """frame[top:bottom, left:right], the parts outside the frame repeating its border."""
    cv2 = require("cv2")
    h, w = frame.shape[:2]
    pad = max(0, -left, -top, right - w, bottom - h)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return frame[top + pad : bottom + pad, left + pad : right + pad]


def crop_square(frame: np.ndarray, box: np.ndarray, margin: float, size: int) -> np.ndarray:
    """The square around `box` widened by `margin` of its side on each side, resized to `size`.

    Parts outside the frame repeat its border, so a face at the edge keeps its scale and position.
    """
    cv2 = require("cv2")
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    crop = _cut(frame, left, top, left + max(1, round(side)), top + max(1, round(side)))
    interpolation = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def eye_transform(eyes: np.ndarray, size: int, template: EyeTemplate = FER_TEMPLATE) -> np.ndarray:
    """The 2x3 similarity matrix taking the image's eye centres [2, 2] onto the template's places in
    a `size` crop."""
    src = np.asarray(eyes, np.float64)
    dst = np.array([template.left, template.right], np.float64) * size
    # as complex numbers a similarity is z -> a z + b: two point pairs fix a and b
    zs, zd = src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1]
    a = (zd[1] - zd[0]) / (zs[1] - zs[0])
    b = zd[0] - a * zs[0]
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def usable_eyes(eyes: np.ndarray | None) -> bool:
    """Eyes an alignment can use: finite and apart (a detector's miss gives neither)."""
    if eyes is None:
        return False
    eyes = np.asarray(eyes, np.float64)
    return bool(np.isfinite(eyes).all() and np.hypot(*(eyes[1] - eyes[0])) >= 1.0)


def align_face(
    frame: np.ndarray,
    box: np.ndarray,
    eyes: np.ndarray | None,
    size: int,
    margin: float,
    template: EyeTemplate = FER_TEMPLATE,
) -> np.ndarray:
    """A `size` x `size` crop of `frame` (grey or RGB): aligned by `eyes` [2, 2] when they are usable,
    else `crop_square(frame, box, margin, size)`."""
    if not usable_eyes(eyes):
        return crop_square(frame, box, margin, size)
    cv2 = require("cv2")
    m = eye_transform(np.asarray(eyes), size, template)
    # cut out the part of the frame the crop shows, shrunk by area averaging first when the face is
    # large (a warp alone samples too few source pixels and aliases), then warp that small patch
    inverse = cv2.invertAffineTransform(m)
    corners = inverse @ np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64).T
    left, top = int(np.floor(corners[0].min())) - 1, int(np.floor(corners[1].min())) - 1
    right, bottom = int(np.ceil(corners[0].max())) + 1, int(np.ceil(corners[1].max())) + 1
    patch = _cut(frame, left, top, right, bottom)
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    shrink = min(1.0, 1.5 * scale)  # keep a little more than the crop's resolution for the warp
    ph, pw = patch.shape[:2]
    new_w, new_h = max(1, round(pw * shrink)), max(1, round(ph * shrink))
    sx = sy = 1.0
    if new_w < pw:
        patch = cv2.resize(patch, (new_w, new_h), interpolation=cv2.INTER_AREA)
        sx, sy = new_w / pw, new_h / ph
    # patch pixel q shows frame point (q + 0.5) / s - 0.5 + (left, top) (pixel centres, as cv2.resize);
    # the warp takes patch pixels to crop pixels
    from_patch = np.array([[1 / sx, 0, left + 0.5 / sx - 0.5], [0, 1 / sy, top + 0.5 / sy - 0.5], [0, 0, 1]])
    warp = m @ from_patch
    return cv2.warpAffine(patch, warp, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
