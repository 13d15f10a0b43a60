"""BlazeFace short range (MediaPipe's face detector), shipped as `models/blazeface.onnx`, run by onnxruntime.

The graph (converted by tools/models/blazeface.py; origin and licence in models/NOTICE.md) takes
uint8 RGB [N, 128, 128, 3] and returns, for 896 fixed anchors, a score logit and a box with six
keypoints (the subject's right eye, left eye, nose tip, mouth, right ear, left ear) relative to the
anchor, in input pixels. Here: letterbox the frame to 128 x 128, decode the anchors, keep scores of
at least `score`, merge overlapping boxes by score-weighted averaging (MediaPipe's weighted NMS:
steadier boxes than keeping only the best), and map back to frame pixels.

The model sees a face down to about 16 of its 128 pixels: a face of `min_face` in a whole frame can
be smaller. So a frame without a face found whole is searched again in overlapping square tiles (one
batch) in which such a face is large enough. With `near` (the face on an earlier keyframe) the
detector first looks in a square around that face alone: a small face is seen at a useful size and
the search costs one small image.
"""

from __future__ import annotations

import functools

import numpy as np

from auxformer.common.optional import require

from ..onnxruntime_runner import OnnxRuntimeOptions, inference_session
from .models import model_digest, model_path
from .picture import Picture, as_rgb
from .vggface import session_providers

NAME = "blazeface"
FILE = "blazeface.onnx"
SIDE = 128  # the model's input side
# SSD anchors of the short-range model (MediaPipe's face_detection_short_range graph): feature maps
# 16 x 16 (stride 8) with 2 anchors per cell and 8 x 8 (strides 16, three layers merged) with 6
STRIDES_ANCHORS = ((8, 2), (16, 6))
LANDMARKS = 6
# MediaPipe keeps scores >= 0.5; on real photographs (benchmarks/bench_faces.py) that gives ~30 times
# Haar's false detections on faceless images, 0.75 fewer than Haar's while finding far more faces
SCORE = 0.75
# the short-range model finds faces down to about 16 input pixels; below 18 the frame is searched in tiles
MIN_INPUT_FACE = 18


@functools.cache
def anchors() -> np.ndarray:
    """Anchor centres [896, 2] in [0, 1], in the model's output order."""
    out = []
    for stride, per_cell in STRIDES_ANCHORS:
        cells = SIDE // stride
        y, x = np.mgrid[0:cells, 0:cells]
        centres = (np.stack([x, y], -1).reshape(-1, 2) + 0.5) / cells
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


def weights_sha256() -> str:
    """Short sha256 of the shipped model (recorded in the feature settings)."""
    return model_digest(FILE)


def decode(regressors: np.ndarray, logits: np.ndarray, score: float) -> np.ndarray:
    """One image's outputs -> [M, 4 + 1 + 12]: box x0, y0, x1, y1, score, six keypoints (x, y), in
    [0, 1] of the model input, for the anchors scoring at least `score`."""
    scores = 1 / (1 + np.exp(-np.clip(logits[:, 0], -80, 80)))
    keep = scores >= score
    raw, centre = regressors[keep] / SIDE, anchors()[keep]
    cx, cy = raw[:, 0] + centre[:, 0], raw[:, 1] + centre[:, 1]
    half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], 1)
    points = raw[:, 4 : 4 + 2 * LANDMARKS].reshape(-1, LANDMARKS, 2) + centre[:, None]
    return np.concatenate([boxes, scores[keep, None], points.reshape(-1, 2 * LANDMARKS)], 1)


def weighted_nms(found: np.ndarray, overlap: float) -> np.ndarray:
    """Clusters of boxes overlapping the best remaining one by more than `overlap` IoU become their
    score-weighted mean (box and keypoints), with the best one's score."""
    order = np.argsort(-found[:, 4])
    found = found[order]
    out = []
    alive = np.ones(len(found), bool)
    for i in range(len(found)):
        if not alive[i]:
            continue
        a, b = found[i, :4], found[:, :4]
        x0, y0 = np.maximum(b[:, 0], a[0]), np.maximum(b[:, 1], a[1])
        x1, y1 = np.minimum(b[:, 2], a[2]), np.minimum(b[:, 3], a[3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
        members = alive & (inter / np.maximum(union, 1e-9) > overlap)
        members[i] = True
        w = found[members, 4:5]
        merged = (found[members] * w).sum(0) / w.sum()
        merged[4] = found[i, 4]
        out.append(merged)
        alive &= ~members
    return np.array(out, np.float32).reshape(-1, found.shape[1])


class BlazeFaceDetector:
    """Faces with eye landmarks: `detect` returns [N, 9] (x0, y0, x1, y1, score, then the eyes' (x, y):
    the subject's right eye first, which is the one on the image's left on an upright face)."""

    name = NAME

    def __init__(
        self,
        min_face: float = 0.1,
        score: float = SCORE,
        overlap: float = 0.3,
        threads: int = 1,
        providers: tuple[str, ...] = (),
        track_margin: float = 1.5,
    ):
        self.cv2 = require("cv2")
        ort = require("onnxruntime")
        options = OnnxRuntimeOptions(providers=session_providers(ort, providers), threads=threads)
        self.session = inference_session(model_path(FILE), options=options)
        self.min_face, self.score, self.overlap, self.track_margin = min_face, score, overlap, track_margin

    def detect(self, image: Picture | np.ndarray, near: np.ndarray | None = None) -> np.ndarray:
        h, w = image.shape[:2]
        if near is not None:
            side = max(near[2] - near[0], near[3] - near[1]) * (1 + 2 * self.track_margin)
            cx, cy = (near[0] + near[2]) / 2, (near[1] + near[3]) / 2
            roi = (int(max(0, cx - side / 2)), int(max(0, cy - side / 2)))
            roi = (*roi, int(min(w, cx + side / 2)), int(min(h, cy + side / 2)))
            # only when the square is clearly smaller than the frame: else it is the full search again
            if roi[2] - roi[0] > 8 and roi[3] - roi[1] > 8 and side < 0.8 * max(h, w):
                found = self._search(as_rgb(image), [roi])
                if len(found):
                    return found
        # the whole frame, letterboxed straight from a Picture: no full-size RGB unless a region needs it
        found = self._run([letterbox(self.cv2, image, SIDE)], [(0, 0, w, h)], (h, w))
        if len(found):
            return found
        return self._search(as_rgb(image), tiles(w, h, self.min_face))

    def _search(self, rgb: np.ndarray, rois: list[tuple[int, int, int, int]]) -> np.ndarray:
        """Faces in the regions `rois` of `rgb` (one batch), merged, in frame pixels."""
        boxed = [letterbox(self.cv2, rgb[y0:y1, x0:x1], SIDE) for x0, y0, x1, y1 in rois]
        return self._run(boxed, rois, rgb.shape[:2])

    def _run(
        self, boxed: list[tuple[np.ndarray, float, np.ndarray]], rois: list[tuple[int, int, int, int]], shape: tuple
    ) -> np.ndarray:
        """The model on letterboxed regions `boxed` of `rois`; merged detections in frame pixels."""
        if not rois:
            return np.zeros((0, 9), np.float32)
        regressors, logits = self.session.run(None, {"image": np.stack([b[0] for b in boxed])})
        found = []
        for (_, scale, offset), (x0, y0, _, _), reg, logit in zip(boxed, rois, regressors, logits, strict=True):
            rows = decode(reg, logit, self.score)
            # model-input [0, 1] -> frame pixels
            xy = (rows[:, [0, 1, 2, 3, 5, 6, 7, 8]].reshape(-1, 4, 2) * SIDE - offset) / scale + np.array([x0, y0])
            found.append(np.concatenate([xy[:, :2].reshape(-1, 4), rows[:, 4:5], xy[:, 2:].reshape(-1, 4)], 1))
        merged = weighted_nms(np.concatenate(found).astype(np.float32), self.overlap)
        side = np.maximum(merged[:, 2] - merged[:, 0], merged[:, 3] - merged[:, 1])
        h, w = shape[:2]
        return merged[side >= self.min_face * min(h, w)]


def tiles(width: int, height: int, min_face: float) -> list[tuple[int, int, int, int]]:
    """Overlapping squares in which a face of `min_face` (of the shorter side) is seen at about
    `MIN_INPUT_FACE` model pixels, overlapping by one such face so none is cut in every square.
    None when the whole frame already shows such a face that large."""
    short = min(width, height)
    face = max(min_face * short, 1.0)
    side = int(min(short, face * SIDE / MIN_INPUT_FACE))
    if face / max(width, height) * SIDE >= MIN_INPUT_FACE or side >= max(width, height):
        return []
    stride = max(1.0, side - face)
    xs, ys = (np.linspace(0, n - side, int(np.ceil((n - side) / stride)) + 1).astype(int) for n in (width, height))
    return [(int(x), int(y), int(x) + side, int(y) + side) for y in ys for x in xs]


def letterbox(cv2: object, image: Picture | np.ndarray, side: int) -> tuple[np.ndarray, float, np.ndarray]:
    """`image` scaled to fit a `side` square and centred on black: (image, scale, (x, y) offset)."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if isinstance(image, Picture):
        small = image.resized_rgb(nw, nh)
    else:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR  # type: ignore[attr-defined]
        small = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=interpolation)  # type: ignore[attr-defined]
    out = np.zeros((side, side, 3), np.uint8)
    ox, oy = (side - nw) // 2, (side - nh) // 2
    out[oy : oy + nh, ox : ox + nw] = small
    return out, scale, np.array([ox, oy], np.float32)
