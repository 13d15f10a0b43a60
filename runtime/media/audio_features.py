"""Audio features: openSMILE ComParE_2016 low-level descriptors and their deltas, 130 dims per frame.

The opensmile package gives LLDs and deltas as two feature levels, and each level is a full run of
its ComParE_2016 configuration, functionals included. We run the package's own LLD include once, with
one sink that joins both levels (`lld_config`): the same values in a third of the time. The two
levels' row counts differ by a frame or two at the end (docs/model.md, "Inputs"); the join stops at the
shorter. The signal comes from our own decoder through `process_signal`, so no mediainfo / file
probing is involved.

The package's ComParE_2016 steps its frames by 10 ms; the paper's LLDs step by 16 ms (188 frames per
3-s clip). Another step changes only the frame steps of the package's LLD include. Either way the
configuration is a copy of the package's in the user cache, so no openSMILE file ships here.
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


LEVEL = "auxformer_lld"  # the joined level of LLDs and deltas, in the package's column order
# our top-level file beside the package's includes: the LLD include (which computes the deltas too)
# and one concatenation of the six levels that ComParE_2016.conf splits into `lld` and `lld_de`
_TOP = f"""[componentInstances:cComponentManager]
instance[dataMemory].type=cDataMemory
\\{{\\cm[source{{?}}:include external source]}}
\\{{ComParE_2016_core.lld.conf.inc}}

[componentInstances:cComponentManager]
instance[auxformer_concat].type=cVectorConcat

[auxformer_concat:cVectorConcat]
reader.dmLevel = is13_lld_nzsmo;is13_lldA_smo;is13_lldB_smo;is13_lld_nzsmo_de;is13_lldA_smo_de;is13_lldB_smo_de
writer.dmLevel = {LEVEL}
includeSingleElementFields = 1

\\{{\\cm[sink{{?}}:include external sink]}}
"""


def lld_config(step_ms: int = PACKAGE_STEP_MS, opensmile_dir: Path | None = None, cache: Path | None = None) -> Path:
    """A configuration giving ComParE_2016's LLDs and deltas in one run, as level `LEVEL`: the installed
    opensmile package's config folders, copied into the cache once, plus our top-level file; with
    another `step_ms`, the two `frameStep` lines of the LLD include changed (windows, smoothing and
    deltas stay)."""
    src = (opensmile_dir or Path(require("opensmile").__file__).parent) / "core" / "config"
    version = getattr(require("opensmile"), "__version__", "unknown")
    dest = (cache or cache_root() / "opensmile") / f"ComParE_2016-{version}-lld-step{step_ms}ms"
    conf = dest / "compare" / "auxformer_lld.conf"
    if conf.is_file():
        return conf
    core = (src / "compare" / _CORE).read_text()
    if step_ms != PACKAGE_STEP_MS:
        core, found = _STEP.subn(rf"\g<1>{step_ms / 1000:.3f}", core)
        if found != 2:
            raise RuntimeError(f"{src / 'compare' / _CORE}: expected 2 frameStep lines of 0.010, found {found}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent))  # complete, then renamed: readers never see half
    for folder in ("compare", "shared"):
        shutil.copytree(src / folder, staging / folder)
    (staging / "compare" / _CORE).write_text(core)
    (staging / "compare" / conf.name).write_text(_TOP)
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
        self.smile = opensmile.Smile(feature_set=str(lld_config(step_ms)), feature_level=LEVEL)

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
            values = self.smile.process_signal(signal, rate).to_numpy(np.float32, copy=True)
        if values.shape[1] != AUDIO_DIM:
            raise RuntimeError(f"openSMILE gave {values.shape[1]} dims, expected {AUDIO_DIM}")
        return values

    @property
    def names(self) -> list[str]:
        """The 130 descriptor names, in column order."""
        return list(self.smile.feature_names)


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
