"""The legacy TensorRT (< 10) entropy calibrator, against a recording FAKE of tensorrt and pycuda.

TensorRT cannot run here (no GPU); these tests check our logic: the version switch, batches conformed
to the calibration profile, device buffers reused, the end-of-data signal, and the cache file."""

from __future__ import annotations

import types

import numpy as np

from auxformer.calibration.dataset import write_calibration_set
from auxformer.calibration.trt_calibrator import conform, make_entropy_calibrator, needs_legacy_calibrator


class FakeAllocation:
    def __init__(self, address: int, nbytes: int):
        self.address, self.nbytes = address, nbytes

    def __int__(self) -> int:
        return self.address


def fake_modules():
    """A stand-in for `tensorrt` (just the calibrator base) and `pycuda.driver` that records copies."""
    calls: list[tuple] = []

    class IInt8EntropyCalibrator2:
        def __init__(self) -> None:
            calls.append(("base_init",))

    def mem_alloc(nbytes: int) -> FakeAllocation:
        calls.append(("mem_alloc", nbytes))
        return FakeAllocation(0x1000 * (1 + sum(c[0] == "mem_alloc" for c in calls)), nbytes)

    def memcpy_htod(dest: FakeAllocation, array: np.ndarray) -> None:
        assert array.flags["C_CONTIGUOUS"] and array.nbytes <= dest.nbytes
        calls.append(("memcpy_htod", int(dest), array.shape, array.dtype))

    trt = types.SimpleNamespace(IInt8EntropyCalibrator2=IInt8EntropyCalibrator2)
    cuda = types.SimpleNamespace(mem_alloc=mem_alloc, memcpy_htod=memcpy_htod)
    return trt, cuda, calls


def test_version_switch():
    assert needs_legacy_calibrator("8.5.2") and needs_legacy_calibrator("8.6.1.6")
    assert not needs_legacy_calibrator("10.3.0") and not needs_legacy_calibrator("11.4.0.106")


def test_conform_crops_and_pads_with_masked_frames():
    batch = {
        "audio": np.ones((3, 10, 130), np.float32),
        "audio_mask": np.ones((3, 10), bool),
        "video": np.ones((3, 2, 4), np.float32),
        "video_mask": np.ones((3, 2), bool),
    }
    out = conform(batch, (4, 6, 5))
    assert out["audio"].shape == (4, 6, 130) and out["video"].shape == (4, 5, 4)
    assert out["audio_mask"][:3].all() and not out["audio_mask"][3].any()
    assert out["video_mask"][:, :2][:3].all() and not out["video_mask"][:, 2:].any()


def test_fake_calibrator_streams_batches_and_keeps_a_cache(small_demo, tmp_path):
    trt, cuda, calls = fake_modules()
    calib = write_calibration_set(small_demo, tmp_path / "calib", n=40, batch_size=16)
    cache = tmp_path / "calib.cache"
    calibrator = make_entropy_calibrator(calib, (16, 64, 20), cache, trt=trt, cuda=cuda)
    assert calls[0] == ("base_init",) and calibrator.get_batch_size() == 16

    names = ["audio", "audio_mask", "video", "video_mask"]
    served = []
    while (pointers := calibrator.get_batch(names)) is not None:
        served.append(pointers)
    assert len(served) == len(calib) == 3
    assert all(p == served[0] for p in served)  # the same four device buffers every time
    assert sum(c[0] == "mem_alloc" for c in calls) == 4
    copies = [c for c in calls if c[0] == "memcpy_htod"]
    assert len(copies) == 12
    assert {c[2] for c in copies} == {(16, 64, 130), (16, 64), (16, 20, 16), (16, 20)}

    assert calibrator.read_calibration_cache() is None
    calibrator.write_calibration_cache(memoryview(b"TRT-8600-EntropyCalibration2"))
    assert cache.read_bytes() == b"TRT-8600-EntropyCalibration2"
    again = make_entropy_calibrator(calib, (16, 64, 20), cache, trt=trt, cuda=cuda)
    assert again.read_calibration_cache() == b"TRT-8600-EntropyCalibration2"
