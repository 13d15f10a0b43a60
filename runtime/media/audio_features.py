"""Audio features: openSMILE ComParE_2016 low-level descriptors and their deltas, 130 dims per frame.

openSMILE computes the two levels in separate passes whose row counts differ by a frame or two at
the end (docs/model.md, "Inputs"): they are joined by position and trimmed to the shorter. The signal comes
from our own decoder through `process_signal`, so no mediainfo / file probing is involved.

The opensmile package's ComParE_2016 steps its frames by 10 ms; the paper's LLDs step by 16 ms
(188 frames per 3-s clip). Any other step runs the package's own bundled configuration with only
its frame steps changed (`step_config`): a copy in the user cache, so no openSMILE file ships here.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auxformer.common.optional import require

from ..contracts import AUDIO_DIM
from ..hashing import cache_root

NAME = "ComParE_2016 LLD + deltas (openSMILE)"
PACKAGE_STEP_MS = 10  # the step of the opensmile package's ComParE_2016
# below this openSMILE returns a single NaN row: there is no analysis frame to speak of
MIN_SECONDS = 0.1
# ComParE's LLD frame i analyses [i * step, i * step + WINDOW) (its longest window, the voicing one);
# the 3-frame moving average (`_sma`) reaches one step further either side
WINDOW_SECONDS = 0.06
_CORE = "ComParE_2016_core.lld.conf.inc"  # where both framers (60 ms and 20 ms windows) set the step
_STEP = re.compile(r"^(\s*frameStep\s*=\s*)0\.010\s*$", re.MULTILINE)


def describe(step_ms: int) -> str:
    """The feature spec's name of the audio features at this step."""
    return NAME if step_ms == PACKAGE_STEP_MS else f"{NAME}, {step_ms} ms step"


def step_config(step_ms: int, opensmile_dir: Path | None = None, cache: Path | None = None) -> Path:
    """ComParE_2016.conf of the installed opensmile package with every frame step set to `step_ms`:
    the package's config folders are copied into the cache once and the two `frameStep` lines of
    the LLD include changed; nothing else differs (window lengths, smoothing, deltas)."""
    src = (opensmile_dir or Path(require("opensmile").__file__).parent) / "core" / "config"
    version = getattr(require("opensmile"), "__version__", "unknown")
    dest = (cache or cache_root() / "opensmile") / f"ComParE_2016-{version}-step{step_ms}ms"
    conf = dest / "compare" / "ComParE_2016.conf"
    if conf.is_file():
        return conf
    text, found = _STEP.subn(rf"\g<1>{step_ms / 1000:.3f}", (src / "compare" / _CORE).read_text())
    if found != 2:
        raise RuntimeError(f"{src / 'compare' / _CORE}: expected 2 frameStep lines of 0.010, found {found}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent))  # complete, then renamed: readers never see half
    for folder in ("compare", "shared"):
        shutil.copytree(src / folder, staging / folder)
    (staging / "compare" / _CORE).write_text(text)
    try:
        staging.rename(dest)
    except OSError:  # another process made it first
        shutil.rmtree(staging, ignore_errors=True)
    return conf


@dataclass
class AudioFeatures:
    values: np.ndarray  # float32 [Ta, 130]
    mask: np.ndarray  # bool [Ta]
    reason: str = ""  # why the mask has no true entry, when it has none


class ComParE:
    """Callable extractor; build once per process (the openSMILE configs take ~0.2 s to load)."""

    name = NAME

    def __init__(
        self, silence_dbfs: float = -60.0, digital_silence_dbfs: float = -90.0, step_ms: int = PACKAGE_STEP_MS
    ):
        opensmile = require("opensmile")
        self.silence = 10 ** (silence_dbfs / 20)
        self.digital_silence = 10 ** (digital_silence_dbfs / 20)
        self.name = describe(step_ms)
        self.step_seconds = step_ms / 1000
        if step_ms == PACKAGE_STEP_MS:
            feature_set: object = opensmile.FeatureSet.ComParE_2016
            levels: tuple[object, ...] = (
                opensmile.FeatureLevel.LowLevelDescriptors,
                opensmile.FeatureLevel.LowLevelDescriptors_Deltas,
            )
        else:  # a config file names its levels as the package's ComParE_2016.conf does
            feature_set, levels = str(step_config(step_ms)), ("lld", "lld_de")
        self.smiles = [opensmile.Smile(feature_set=feature_set, feature_level=level) for level in levels]

    def __call__(self, signal: np.ndarray | None, rate: int) -> AudioFeatures:
        if signal is None:
            return _missing(0, "no audio stream")
        if len(signal) < MIN_SECONDS * rate:
            return _missing(0, f"audio stream too short ({len(signal) / rate:.3f} s)")
        values = self.rows(signal, rate)
        n = len(values)
        if float(np.abs(signal).max(initial=0.0)) < self.silence:
            return _missing(n, "audio track is silent")
        padding = silent_frames(signal, rate, n, self.digital_silence, self.step_seconds)
        mask = np.isfinite(values).all(axis=1) & ~padding
        values[~mask] = 0.0
        return AudioFeatures(values, mask, "" if mask.any() else "no valid audio frame")

    def rows(self, signal: np.ndarray, rate: int) -> np.ndarray:
        """The raw descriptor rows [n, 130] of `signal` (NaN where openSMILE had no frame), unmasked."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "segment too short": the caller masks it
            lld, delta = (s.process_signal(signal, rate).to_numpy(np.float32) for s in self.smiles)
        n = min(len(lld), len(delta))
        values = np.concatenate([lld[:n], delta[:n]], axis=1)
        if values.shape[1] != AUDIO_DIM:
            raise RuntimeError(f"openSMILE gave {values.shape[1]} dims, expected {AUDIO_DIM}")
        return values

    @property
    def names(self) -> list[str]:
        """The 130 descriptor names, in column order."""
        return [*self.smiles[0].feature_names, *self.smiles[1].feature_names]


def silent_frames(
    signal: np.ndarray, rate: int, frames: int, floor: float, step_seconds: float = PACKAGE_STEP_MS / 1000
) -> np.ndarray:
    """bool [frames]: true where every sample a frame's LLDs see (its window, widened by the smoothing)
    is below `floor` in magnitude. Frames are `step_seconds` apart (the extractor's frame step)."""
    loud = np.concatenate([[0], np.cumsum(np.abs(signal) >= floor)])
    hop = step_seconds * rate
    starts = np.arange(frames) * hop - hop
    ends = starts + WINDOW_SECONDS * rate + 2 * hop
    starts = np.clip(np.round(starts).astype(np.int64), 0, len(signal))
    ends = np.clip(np.round(ends).astype(np.int64), 0, len(signal))
    return loud[ends] == loud[starts]


def _missing(frames: int, reason: str) -> AudioFeatures:
    return AudioFeatures(np.zeros((frames, AUDIO_DIM), np.float32), np.zeros(frames, bool), reason)
