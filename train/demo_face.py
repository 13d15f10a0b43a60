"""Synthetic talking-head frames for the raw-media demo: a real face, varied per speaker, warped into
expressions.

The face is the public-domain NASA portrait that scikit-image ships inside its wheel
(`skimage/data/astronaut.png`); it is read from the installed package at run time and never copied
into this project. Speakers differ in skin tone, face geometry (eye spacing, mouth width, jaw
length, aspect), size, position, mirror image, background and head motion. Expressions are smooth
displacement fields around facial landmarks (brows, eyes, mouth corners, jaw) whose strength
follows a time curve, so a frame shows how far into the expression the face is.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass

import numpy as np

from auxformer.common.optional import require

PORTRAIT = ("skimage", "data/astronaut.png")
# the part of the portrait that is the head, and landmarks in it (pixels of the full image)
HEAD = (130, 10, 320, 210)  # x0, y0, x1, y1
LANDMARKS = {
    "eye_l": (202, 100),
    "eye_r": (248, 102),
    "brow_l": (202, 89),
    "brow_r": (249, 91),
    "nose": (225, 128),
    "mouth": (227, 145),
    "corner_l": (205, 142),
    "corner_r": (246, 142),
    "lip_low": (227, 153),
    "chin": (225, 177),
}
# name -> [(landmark, dx, dy, radius)]: content near the landmark moves by (dx, dy) at full strength
EXPRESSIONS: dict[str, list[tuple[str, float, float, float]]] = {
    "frown": [("brow_l", 3, 7, 9), ("brow_r", -3, 7, 9), ("eye_l", 0, 2, 5), ("eye_r", 0, 2, 5)],
    "jaw_drop": [("lip_low", 0, 10, 9), ("chin", 0, 9, 14), ("mouth", 0, 4, 8)],
    "lip_corners_down": [("corner_l", -2, 8, 6), ("corner_r", 2, 8, 6), ("brow_l", 2, -6, 8), ("brow_r", -2, -6, 8)],
}


@functools.lru_cache(maxsize=1)
def portrait_head() -> np.ndarray:
    """The head region of the portrait as float32 RGB, from the installed scikit-image package."""
    cv2 = require("cv2")
    try:
        resource = importlib.resources.files(PORTRAIT[0]).joinpath(PORTRAIT[1])
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "the raw-media demo draws its face from scikit-image's bundled portrait: pip install scikit-image"
        ) from err
    with importlib.resources.as_file(resource) as path:
        bgr = cv2.imread(str(path))
    if bgr is None:
        raise FileNotFoundError(f"cannot read {PORTRAIT[1]} from the installed {PORTRAIT[0]} package")
    x0, y0, x1, y1 = HEAD
    return np.ascontiguousarray(bgr[y0:y1, x0:x1, ::-1], dtype=np.float32)


@dataclass(frozen=True)
class Look:
    """How one speaker appears on screen."""

    darkness: float = 1.0  # skin tone: multiplies all channels
    warmth: float = 0.0  # skin tone: red up, blue down
    eye_spread: float = 0.0  # pixels each eye moves outwards
    mouth_width: float = 0.0
    jaw: float = 0.0  # chin moves down by this
    scale: float = 0.85  # head height as a fraction of the frame
    aspect: float = 1.0  # head width / height relative to the portrait
    dx: float = 0.0  # head centre offset, fraction of the frame
    dy: float = 0.0
    flip: bool = False
    background: tuple[float, float, float] = (128.0, 128.0, 128.0)
    sway: float = 0.0  # phase of the head's slow motion


def random_look(rng: np.random.Generator) -> Look:
    return Look(
        darkness=float(rng.uniform(0.6, 1.1)),
        warmth=float(rng.uniform(-0.04, 0.12)),
        eye_spread=float(rng.uniform(-2.5, 2.5)),
        mouth_width=float(rng.uniform(-3, 3)),
        jaw=float(rng.uniform(-4, 5)),
        scale=float(rng.uniform(0.78, 0.95)),
        aspect=float(rng.uniform(0.88, 1.12)),
        dx=float(rng.uniform(-0.07, 0.07)),
        dy=float(rng.uniform(-0.05, 0.05)),
        flip=bool(rng.random() < 0.5),
        background=tuple(float(c) for c in rng.uniform(30, 225, 3)),
        sway=float(rng.uniform(0, 2 * np.pi)),
    )


class FaceRenderer:
    """Frames of `size` x `size` pixels showing one head with a given expression strength."""

    def __init__(self, size: int = 128):
        self.cv2 = require("cv2")
        self.size = size
        self.head = portrait_head()
        h, w = self.head.shape[:2]
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.fields = {name: self._field(moves) for name, moves in EXPRESSIONS.items()}
        self.geometry: dict[Look, tuple[np.ndarray, np.ndarray]] = {}
        # soft oval so the head blends into any background without a hard edge
        self.alpha = np.clip(
            1.3 - (((self.xx - w / 2) / (w * 0.52)) ** 2 + ((self.yy - h / 2) / (h * 0.55)) ** 2), 0, 1
        )

    def _field(self, moves: list[tuple[str, float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = np.zeros_like(self.xx), np.zeros_like(self.yy)
        for landmark, mx, my, radius in moves:
            lx, ly = LANDMARKS[landmark][0] - HEAD[0], LANDMARKS[landmark][1] - HEAD[1]
            bump = np.exp(-((self.xx - lx) ** 2 + (self.yy - ly) ** 2) / (2 * radius**2))
            dx += mx * bump
            dy += my * bump
        return dx, dy

    def _geometry(self, look: Look) -> tuple[np.ndarray, np.ndarray]:
        moves = [
            ("eye_l", -look.eye_spread, 0, 8),
            ("eye_r", look.eye_spread, 0, 8),
            ("corner_l", -look.mouth_width, 0, 6),
            ("corner_r", look.mouth_width, 0, 6),
            ("chin", 0, look.jaw, 16),
        ]
        return self._field(moves)

    def frame(self, look: Look, expression: str | None, strength: float, t: float) -> np.ndarray:
        """RGB uint8 frame at time `t` (seconds) with `expression` at `strength` (0..1)."""
        cv2 = self.cv2
        if look not in self.geometry:  # a speaker's face shape is the same in every frame
            self.geometry[look] = self._geometry(look)
        dx, dy = self.geometry[look]
        if expression is not None:
            ex, ey = self.fields[expression]
            dx, dy = dx + strength * ex, dy + strength * ey
        # content moves by (dx, dy): each output pixel samples from where its content came from
        head = cv2.remap(self.head, self.xx - dx, self.yy - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        tone = look.darkness * np.array([1 + look.warmth, 1.0, 1 - look.warmth], np.float32)
        head *= tone
        return self._place(head, self.alpha, look, t)

    def background(self, look: Look, t: float) -> np.ndarray:
        """The speaker's scene with no one in it (for clips without a face)."""
        return self._place(np.zeros_like(self.head), np.zeros_like(self.alpha), look, t)

    def _place(self, head: np.ndarray, alpha: np.ndarray, look: Look, t: float) -> np.ndarray:
        cv2, s = self.cv2, self.size
        h, w = head.shape[:2]
        sy = look.scale * s / h
        sx = sy * look.aspect * (-1 if look.flip else 1)
        cx = s / 2 + look.dx * s + 0.02 * s * np.sin(2 * np.pi * 0.7 * t + look.sway)
        cy = s / 2 + look.dy * s + 0.015 * s * np.cos(2 * np.pi * 0.5 * t + look.sway)
        m = np.array([[sx, 0, cx - sx * w / 2], [0, sy, cy - sy * h / 2]], np.float32)
        fg = cv2.warpAffine(head, m, (s, s), flags=cv2.INTER_LINEAR)
        a = cv2.warpAffine(alpha, m, (s, s), flags=cv2.INTER_LINEAR)[..., None]
        # a gentle vertical light gradient so backgrounds are not flat fields
        light = np.linspace(1.08, 0.92, s, dtype=np.float32)[:, None, None]
        bg = np.asarray(look.background, np.float32) * light
        return np.clip(fg * a + bg * (1 - a), 0, 255).astype(np.uint8)
