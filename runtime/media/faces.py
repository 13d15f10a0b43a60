"""Face detection on every k-th frame, and boxes (and eyes) for the frames in between.

Detectors:
- `blazeface` (default): MediaPipe's BlazeFace short-range model, converted to ONNX and shipped with
  the package (runtime/media/blazeface.py); faces with eye landmarks, about 2 ms a frame on one thread.
- `haar`: OpenCV's frontal-face Haar cascade, shipped inside `opencv-python-headless<5` (OpenCV 5
  wheels no longer ship the cascades); boxes only, misses tilted, small and dark faces more often.
- `ssd`: the paper's detector, OpenCV's ResNet-10 SSD (Caffe). Its two files are not shipped by any
  package: the user passes `deploy.prototxt` and `res10_300x300_ssd_iter_140000.caffemodel`.

Tracking: detect on frames 0, k, 2k, ... and the last; when a keyframe has several faces keep the one
that overlaps the previous face most (else the best scored); smooth the keyframe boxes (and eyes)
over time; frames between two keyframes with a face get the interpolated box and eyes, frames next
to a keyframe without one hold the nearer box for at most k/2 frames, and the rest have no face (mask
false, never a guess).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from auxformer.common.optional import require

from .blazeface import BlazeFaceDetector, weights_sha256
from .picture import Frames, Picture, as_rgb

DETECTORS = ("blazeface", "haar", "ssd")
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
SSD_HELP = (
    "the SSD face detector needs OpenCV's res10 Caffe model: deploy.prototxt and "
    "res10_300x300_ssd_iter_140000.caffemodel (from the OpenCV repository's samples/dnn/face_detector "
    "and its model downloader); pass both paths"
)


class Detector(Protocol):
    name: str

    def detect(self, image: Picture | np.ndarray, near: np.ndarray | None = None) -> np.ndarray:
        """Faces in one frame (a Picture, or RGB) as float [N, 5]: x0, y0, x1, y1, score; a detector with landmarks
        returns [N, 9], the two eyes' (x, y) after the score (FaceTrack.eyes). `near` is the face's box
        on an earlier frame, a hint a detector may use to search less."""
        ...


class HaarDetector:
    """Frontal-face Haar cascade on a histogram-equalised grey image.

    With `near` (the face found on an earlier keyframe) it first searches only around that box,
    scaled so the face is about `track_side` pixels and over a narrow range of sizes: the cascade
    then costs a fraction of a full-frame search. The full frame (downscaled to `detect_side`) is
    searched when there is no earlier face or it is not found near its last place.
    """

    name = "haar"

    def __init__(
        self,
        min_face: float = 0.1,
        detect_side: int = 320,
        min_neighbors: int = 5,
        scale_factor: float = 1.1,
        track_side: int = 64,
    ):
        self.cv2 = require("cv2")
        path = Path(self.cv2.data.haarcascades) / HAAR_CASCADE
        self.cascade = self.cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"cannot load the Haar cascade {path}: reinstall opencv-python-headless<5")
        self.min_face, self.detect_side, self.track_side = min_face, detect_side, track_side
        self.min_neighbors, self.scale_factor = min_neighbors, scale_factor

    def detect(self, image: Picture | np.ndarray, near: np.ndarray | None = None) -> np.ndarray:
        rgb = as_rgb(image)
        if near is not None:
            found = self._search_near(rgb, near)
            if len(found):
                return found
        h, w = rgb.shape[:2]
        side = max(12, int(self.min_face * min(h, w) * min(1.0, self.detect_side / max(h, w))))
        return self._search(rgb, (0, 0, w, h), self.detect_side / max(h, w), side, None)

    def _search_near(self, rgb: np.ndarray, near: np.ndarray) -> np.ndarray:
        cx, cy = (near[0] + near[2]) / 2, (near[1] + near[3]) / 2
        side = max(near[2] - near[0], near[3] - near[1])
        h, w = rgb.shape[:2]
        roi = (max(0, int(cx - 1.25 * side)), max(0, int(cy - 1.25 * side)))
        roi = (*roi, min(w, int(cx + 1.25 * side)), min(h, int(cy + 1.25 * side)))
        if roi[2] <= roi[0] or roi[3] <= roi[1]:  # the last face lies outside this frame: its size changed
            return np.zeros((0, 5), np.float32)
        t = self.track_side
        return self._search(rgb, roi, t / side, int(0.6 * t), int(1.6 * t))

    def _search(
        self, rgb: np.ndarray, roi: tuple[int, int, int, int], scale: float, min_side: int, max_side: int | None
    ) -> np.ndarray:
        """Faces in `roi` of `rgb`, searched at `scale` (never enlarged) between the sizes given."""
        cv2 = self.cv2
        x0, y0, x1, y1 = roi
        grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        scale = min(1.0, scale)
        if scale < 1.0:
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if min(grey.shape) < min_side:
            return np.zeros((0, 5), np.float32)
        sizes = {"minSize": (min_side, min_side)} | ({"maxSize": (max_side, max_side)} if max_side else {})
        found = self.cascade.detectMultiScale(cv2.equalizeHist(grey), self.scale_factor, self.min_neighbors, **sizes)
        if len(found) == 0:
            return np.zeros((0, 5), np.float32)
        xywh = np.asarray(found, np.float32) / scale + np.array([x0, y0, 0, 0], np.float32)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        return np.concatenate([boxes, (xywh[:, 2] * xywh[:, 3])[:, None]], axis=1)  # score: area


class SsdDetector:
    """OpenCV's res10 SSD face detector (the paper's), from the user's prototxt + caffemodel."""

    name = "ssd"

    def __init__(self, prototxt: str | Path | None, model: str | Path | None, confidence: float = 0.5):
        missing = [str(p) for p in (prototxt, model) if p is None or not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"{SSD_HELP} (missing: {', '.join(missing) or 'paths not given'})")
        self.cv2 = require("cv2")
        self.net = self.cv2.dnn.readNetFromCaffe(str(prototxt), str(model))
        self.confidence = confidence

    def detect(self, image: Picture | np.ndarray, near: np.ndarray | None = None) -> np.ndarray:
        cv2, rgb = self.cv2, as_rgb(image)
        h, w = rgb.shape[:2]
        bgr = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (300, 300))
        self.net.setInput(cv2.dnn.blobFromImage(bgr, 1.0, (300, 300), (104.0, 177.0, 123.0)))
        return ssd_boxes(self.net.forward(), w, h, self.confidence)


def ssd_boxes(out: np.ndarray, width: int, height: int, confidence: float) -> np.ndarray:
    """SSD output [1, 1, N, 7] (image, class, score, x0, y0, x1, y1 in [0, 1]) -> pixel boxes [M, 5]."""
    rows = out.reshape(-1, 7)
    rows = rows[rows[:, 2] >= confidence]
    boxes = np.clip(rows[:, 3:7], 0.0, 1.0) * np.array([width, height, width, height], np.float32)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return np.concatenate([boxes[keep], rows[keep, 2:3]], axis=1).astype(np.float32)


def build_detector(
    name: str,
    min_face: float = 0.1,
    ssd_prototxt: str | None = None,
    ssd_model: str | None = None,
    threads: int = 1,
    providers: tuple[str, ...] = (),
) -> Detector:
    if name == "blazeface":
        return BlazeFaceDetector(min_face=min_face, threads=threads, providers=providers)
    if name == "haar":
        return HaarDetector(min_face=min_face)
    if name == "ssd":
        return SsdDetector(ssd_prototxt, ssd_model)
    raise ValueError(f"unknown face detector {name!r}: use one of {', '.join(DETECTORS)}")


def shipped_weights_sha256(name: str) -> str | None:
    """Short sha256 of the weights shipped for detector `name`; None for one whose weights are not ours."""
    return weights_sha256() if name == BlazeFaceDetector.name else None


@dataclass
class FaceTrack:
    boxes: np.ndarray  # float32 [T, 4] x0, y0, x1, y1 (zeros where there is no face)
    valid: np.ndarray  # bool [T]
    keyframes: np.ndarray  # int [K] frames the detector ran on
    # float32 [T, 2, 2]: (x, y) of the subject's right eye, then the left: the image-left eye first on
    # any face tilted less than 90 degrees, and an upside-down face keeps its eyes' identity (an
    # aligner turns it upright); None when the detector gives no landmarks. Aligners level the eyes
    # with it; rows where `valid` is false are unused.
    eyes: np.ndarray | None = None

    @property
    def rate(self) -> float:
        return float(self.valid.mean()) if len(self.valid) else 0.0


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each box in `a` [N, 4] with the box `b` [4]."""
    x0, y0 = np.maximum(a[:, 0], b[0]), np.maximum(a[:, 1], b[1])
    x1, y1 = np.minimum(a[:, 2], b[2]), np.minimum(a[:, 3], b[3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / np.maximum(area - inter, 1e-6)


def pick_face(found: np.ndarray, previous: np.ndarray | None) -> np.ndarray | None:
    """The detection to follow: the one overlapping the previous face most, else the best scored;
    its box (and eyes, where the detector gives them) without the score."""
    if len(found) == 0:
        return None
    pick = int(found[:, 4].argmax())
    if previous is not None:
        overlap = iou(found[:, :4], previous)
        if overlap.max() > 0.1:
            pick = int(overlap.argmax())
    return np.delete(found[pick], 4)


def track_faces(frames: Frames, detector: Detector, every: int = 3) -> FaceTrack:
    n = len(frames)
    if n == 0:
        return FaceTrack(np.zeros((0, 4), np.float32), np.zeros(0, bool), np.zeros(0, int))
    keys = np.unique(np.r_[np.arange(0, n, max(1, every)), n - 1])
    found: list[np.ndarray | None] = []
    previous = None
    for k in keys:
        box = pick_face(detector.detect(frames[k], near=previous), previous)
        found.append(box)
        previous = box if box is not None else previous
    return fill_between(keys, smooth_keyframes(found), n, every)


def smooth_keyframes(found: list[np.ndarray | None]) -> list[np.ndarray | None]:
    """[1, 2, 1]/4 smoothing over neighbouring keyframes that have a face (detector jitter)."""
    out: list[np.ndarray | None] = []
    for i, box in enumerate(found):
        if box is None:
            out.append(None)
            continue
        near = [(w, found[j]) for w, j in ((1, i - 1), (2, i), (1, i + 1)) if 0 <= j < len(found)]
        near = [(w, b) for w, b in near if b is not None]
        out.append(sum(w * b for w, b in near) / sum(w for w, _ in near))
    return out


def fill_between(keys: np.ndarray, found: list[np.ndarray | None], n: int, every: int) -> FaceTrack:
    """Keyframe rows (box, then eyes where the detector gives them) spread over all `n` frames."""
    width = max((len(f) for f in found if f is not None), default=4)
    boxes = np.zeros((n, width), np.float32)
    valid = np.zeros(n, bool)
    hold = every // 2
    for (a, box_a), (b, box_b) in itertools.pairwise(zip(keys, found, strict=True)):
        for t in range(a, b + 1):
            if box_a is not None and box_b is not None:
                w = (t - a) / (b - a)
                boxes[t], valid[t] = (1 - w) * box_a + w * box_b, True
            elif box_a is not None and t - a <= hold:
                boxes[t], valid[t] = box_a, True
            elif box_b is not None and b - t <= hold:
                boxes[t], valid[t] = box_b, True
    if len(keys) == 1 and found[0] is not None:
        boxes[0], valid[0] = found[0], True
    eyes = boxes[:, 4:8].reshape(n, 2, 2).copy() if width >= 8 else None
    return FaceTrack(np.ascontiguousarray(boxes[:, :4]), valid, keys, eyes)
