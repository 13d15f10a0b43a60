"""Implicit INT8 calibration for TensorRT < 10 (JetPack 5 and early 6), behind a version check.

TensorRT 10.1 deprecated implicit calibration and TensorRT 11 removed it; there the Q/DQ model from
`auxformer.calibration.int8` is the way. On older TensorRT an `IInt8EntropyCalibrator2` streams the
same calibration batches to the GPU and keeps a calibration cache, so a rebuild skips calibration.

Implicit calibration with dynamic shapes runs at one shape (the calibration profile), so every batch
is conformed to it: clips beyond the batch size are left out, lengths are cropped or padded with
masked frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.common import atomic
from auxformer.common.optional import require
from auxformer.runtime.batching import pad_to
from auxformer.runtime.tensorrt_runner import parse_version

from .dataset import CalibrationSet

LEGACY_BEFORE = (10, 0)  # implicit calibration is what TensorRT < 10 offers (deprecated in 10.1, gone in 11)


def needs_legacy_calibrator(trt_version: str) -> bool:
    return parse_version(trt_version) < LEGACY_BEFORE


def conform(batch: dict[str, np.ndarray], shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Crop or pad a padded batch to (batch, audio_len, video_len); padding is masked."""
    b, ta, tv = shape
    cropped = {name: value[:b, : ta if name.startswith("audio") else tv] for name, value in batch.items()}
    return pad_to(cropped, b, ta, tv)


def make_entropy_calibrator(
    calib: CalibrationSet,
    shape: tuple[int, int, int],
    cache_path: str | Path,
    trt: Any | None = None,
    cuda: Any | None = None,
) -> Any:
    """An `IInt8EntropyCalibrator2` over `calib`, conformed to `shape` (the calibration profile).

    `trt` / `cuda` default to the real `tensorrt` and `pycuda.driver` (a CUDA context must be current,
    as it is while the engine builder runs); tests pass recording fakes."""
    trt = trt or require("tensorrt")
    cuda = cuda or require("pycuda.driver")
    cache_path = Path(cache_path)

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)  # TensorRT's pybind base needs the explicit call
            self.batches: Iterator[dict[str, np.ndarray]] = iter(calib)
            self.device: dict[str, Any] = {}  # one allocation per input, reused: every batch has one shape
            self.served = 0

        def get_batch_size(self) -> int:
            return shape[0]

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None  # TensorRT's signal that calibration data is exhausted
            host = conform(batch, shape)
            pointers = []
            for name in names:
                array = np.ascontiguousarray(host[name])
                if name not in self.device:
                    self.device[name] = cuda.mem_alloc(array.nbytes)
                cuda.memcpy_htod(self.device[name], array)
                pointers.append(int(self.device[name]))
            self.served += 1
            return pointers

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            atomic.write_bytes(cache_path, bytes(cache))

    return EntropyCalibrator()
