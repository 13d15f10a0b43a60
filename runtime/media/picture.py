"""A decoded video frame, upright, converted to the colour form each stage needs only when it asks.

A detector needs RGB, but only on its keyframes (every `detect_every`-th frame); the expression
embedder needs grey on every frame with a face. Converting every frame to RGB cost more than the
H.264 decoding itself (3-s 480p clip, one thread: ~45 ms of ~95). So a `Picture` of a frame that
needs no scaling keeps the codec's planes and converts on demand: `grey()` is the luma plane as it
is (expanded from video range when the stream uses it), `rgb()` runs swscale. A frame that must be
scaled (a phone's 1080p) is converted to RGB at once, as before: keeping 1080p planes for a minute
of video would take gigabytes.

`as_rgb` / `as_grey` take a Picture or an RGB array, so stages accept either.

Every conversion goes through one swscale context per thread (`_converted`): PyAV's
`frame.to_ndarray(format=...)` makes a new one per call, which cost more than the conversion itself
(480p to RGB: 3.3 ms per frame against 0.13 ms with the context kept).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from auxformer.common.optional import require

# 8-bit formats whose first plane is the luma at full size: a grey picture without conversion
LUMA_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p", "yuv411p"}
    | {"nv12", "nv21"}
)
JPEG_RANGE = 2  # AVCOL_RANGE_JPEG: the luma already spans 0-255
# video ("MPEG") range luma 16-235 -> 0-255, as swscale expands it on the way to RGB
_FROM_VIDEO_RANGE = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)


class Picture:
    """One video frame, upright. `shape` is its RGB shape (H, W, 3); `rgb()` and `grey()` give uint8
    arrays, made on each call (callers that need one twice keep it)."""

    __slots__ = ("_frame", "_rgb", "_turns", "shape")
    dtype = np.dtype(np.uint8)

    def __init__(self, rgb: np.ndarray | None = None, frame: Any = None, turns: int = 0):
        if (rgb is None) == (frame is None):
            raise ValueError("a Picture holds either an RGB array or a decoded frame")
        self._rgb, self._frame, self._turns = rgb, frame, turns % 4
        if rgb is not None:
            self.shape: tuple[int, ...] = tuple(rgb.shape)
        else:
            h, w = frame.height, frame.width
            self.shape = (w, h, 3) if self._turns % 2 else (h, w, 3)

    @classmethod
    def of_frame(cls, frame: Any, max_side: int, turns: int) -> Picture:
        """A decoded PyAV frame, its longer side brought to at most `max_side`, shown after `turns`
        quarter turns counterclockwise."""
        scale = min(1.0, max_side / max(frame.width, frame.height))
        if scale < 1.0:
            # even sizes keep swscale on its fast path
            width, height = 2 * round(frame.width * scale / 2), 2 * round(frame.height * scale / 2)
            return cls(rgb=_turned(_converted(frame, width=width, height=height), turns))
        return cls(frame=frame, turns=turns)

    def rgb(self) -> np.ndarray:
        if self._rgb is not None:
            return self._rgb
        return _turned(_converted(self._frame), self._turns)

    def resized_rgb(self, width: int, height: int) -> np.ndarray:
        """RGB [height, width, 3] of the whole picture, area-averaged when shrinking. From the codec's
        planes swscale scales and converts in one pass, at a quarter of the cost of RGB at full size
        plus OpenCV's area resize (480p to a detector's 128 pixels)."""
        shrink = width < self.shape[1] or height < self.shape[0]
        if self._rgb is not None:
            cv2 = require("cv2")
            interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            return cv2.resize(self._rgb, (width, height), interpolation=interpolation)
        w, h = (height, width) if self._turns % 2 else (width, height)  # the stored frame is not turned yet
        return _turned(_converted(self._frame, w, h, "AREA" if shrink else "BILINEAR"), self._turns)

    def grey(self) -> np.ndarray:
        luma, table = self.luma()
        return require("cv2").LUT(luma, table) if table is not None else np.ascontiguousarray(luma)

    def luma(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The grey picture as the codec stored it, a view where it can be, and the lookup table that
        brings its values to full range (None when they are already). A face crop applies the table
        to its 64x64 pixels instead of the whole frame."""
        frame = self._frame
        if frame is None or frame.format.name not in LUMA_FORMATS:
            return _grey_of_rgb(self.rgb()), None
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]
        full = frame.format.name.startswith("yuvj") or frame.color_range == JPEG_RANGE
        return _turned(luma, self._turns), None if full else _FROM_VIDEO_RANGE

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        rgb = self.rgb()
        return rgb if dtype is None else rgb.astype(dtype)


Frames = Sequence["Picture | np.ndarray"]  # what the face stages take: decoded Pictures or RGB arrays


_local = threading.local()


def _converted(
    frame: Any, width: int | None = None, height: int | None = None, interpolation: str | None = None
) -> np.ndarray:
    """RGB uint8 of a PyAV frame, scaled to (width, height) when given, through this thread's
    reformatter: swscale keeps its context while the sizes and formats stay the same."""
    reformatter = getattr(_local, "reformatter", None)
    if reformatter is None:
        reformatter = _local.reformatter = require("av").video.reformatter.VideoReformatter()
    out = reformatter.reformat(frame, width=width, height=height, format="rgb24", interpolation=interpolation)
    return out.to_ndarray()


def _grey_of_rgb(rgb: np.ndarray) -> np.ndarray:
    cv2 = require("cv2")
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _turned(image: np.ndarray, turns: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image, turns)) if turns % 4 else image


def as_rgb(frame: Picture | np.ndarray) -> np.ndarray:
    return frame.rgb() if isinstance(frame, Picture) else frame


def as_grey(frame: Picture | np.ndarray) -> np.ndarray:
    """Grey uint8 [H, W] of a Picture, an RGB array or a grey array."""
    if isinstance(frame, Picture):
        return frame.grey()
    return _grey_of_rgb(frame) if frame.ndim == 3 else frame


def as_luma(frame: Picture | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """`Picture.luma` of a Picture; (grey, None) of an array."""
    return frame.luma() if isinstance(frame, Picture) else (as_grey(frame), None)
