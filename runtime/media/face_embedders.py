"""Face crops -> one vector per frame.

- `pixels` (default, no weights): the face box made square, widened by the margin, cut out, turned
  grey and resized to 64x64 ("aligned" to the tracked box: same position and scale in every frame),
  then standardised per crop (zero mean, unit variance): 4096 dims.
- `vggface` (the paper's): VGG16 trained on faces, fc7 after its ReLU, 4096 dims, run by onnxruntime
  from the user's `vgg_face_dag.pth` (see `vggface.py`).

Frames without a face get a zero row; their mask is false, so the zeros are never read as evidence.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from auxformer.common.optional import require

from .faces import FaceTrack


class Embedder(Protocol):
    name: str
    dim: int

    def __call__(self, frames: list[np.ndarray], track: FaceTrack) -> np.ndarray:
        """float32 [T, dim]; zero rows where `track.valid` is false."""
        ...


def crop_square(frame: np.ndarray, box: np.ndarray, margin: float, size: int) -> np.ndarray:
    """The square around `box` widened by `margin` of its side on each side, resized to `size`.

    Parts outside the frame repeat its border, so a face at the edge keeps its scale and position.
    """
    cv2 = require("cv2")
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    right, bottom = left + max(1, round(side)), top + max(1, round(side))
    h, w = frame.shape[:2]
    pad = max(0, -left, -top, right - w, bottom - h)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = frame[top + pad : bottom + pad, left + pad : right + pad]
    interpolation = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


class PixelEmbedder:
    name = "pixels"

    def __init__(self, size: int = 64, margin: float = 0.2):
        self.cv2 = require("cv2")
        self.size, self.margin = size, margin
        self.dim = size * size

    def __call__(self, frames: list[np.ndarray], track: FaceTrack) -> np.ndarray:
        out = np.zeros((len(frames), self.dim), np.float32)
        for t in np.flatnonzero(track.valid):
            grey = self.cv2.cvtColor(frames[t], self.cv2.COLOR_RGB2GRAY)
            crop = crop_square(grey, track.boxes[t], self.margin, self.size).astype(np.float32).ravel()
            out[t] = (crop - crop.mean()) / (crop.std() + 1e-3)
        return out


class VggFaceEmbedder:
    name = "vggface"

    def __init__(
        self,
        weights: str | None,
        margin: float = 0.2,
        providers: tuple[str, ...] = (),
        threads: int = 1,
        preprocess: str = "unit",
    ):
        from .vggface import VggFace

        self.model = VggFace(weights, providers=providers, threads=threads, preprocess=preprocess)
        self.margin = margin
        self.dim = self.model.dim

    def __call__(self, frames: list[np.ndarray], track: FaceTrack) -> np.ndarray:
        out = np.zeros((len(frames), self.dim), np.float32)
        valid = np.flatnonzero(track.valid)
        for start in range(0, len(valid), self.model.batch):
            idx = valid[start : start + self.model.batch]
            crops = np.stack([crop_square(frames[t], track.boxes[t], self.margin, self.model.size) for t in idx])
            out[idx] = self.model.embed(crops)
        return out


def build_embedder(
    name: str,
    margin: float = 0.2,
    pixels_size: int = 64,
    vggface_weights: str | None = None,
    providers: tuple[str, ...] = (),
    threads: int = 1,
    vggface_preprocess: str = "unit",
) -> Embedder:
    if name == "pixels":
        return PixelEmbedder(pixels_size, margin)
    if name == "vggface":
        return VggFaceEmbedder(vggface_weights, margin, providers, threads, vggface_preprocess)
    raise ValueError(f"unknown video embedder {name!r}: use 'pixels' or 'vggface'")
