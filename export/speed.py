"""How much faster a reduced-precision ONNX model runs than fp32 on this machine's CPU: one batch of
real clips, one onnxruntime thread each, measured side by side (median of repeats) in the runtime's
onnxruntime runner."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from auxformer.runtime.onnxruntime_runner import OnnxRuntimeOptions, OnnxRuntimeRunner
from auxformer.runtime.runner import Runner

REPEATS = 15


def median_seconds(runner: Runner, feeds: dict[str, np.ndarray], repeats: int = REPEATS) -> float:
    runner.run(feeds)  # warm-up: first runs allocate and pick kernels
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        runner.run(feeds)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compare(models: dict[str, Path], feeds: dict[str, np.ndarray], repeats: int = REPEATS) -> dict[str, Any]:
    """{precision: {"ms": median, "speedup_vs_fp32": ratio}} for one batch, interleaving the models'
    runs so a busy neighbour slows all of them alike."""
    options = OnnxRuntimeOptions(threads=1, spinning=False)
    runners = {p: OnnxRuntimeRunner(path, "cpu", options) for p, path in models.items()}
    rounds: dict[str, list[float]] = {p: [] for p in runners}
    for _ in range(3):
        for p, runner in runners.items():
            rounds[p].append(median_seconds(runner, feeds, repeats // 3 or 1))
    for runner in runners.values():
        runner.close()
    ms = {p: 1000 * min(v) for p, v in rounds.items()}
    batch, audio_len = feeds["audio"].shape[:2]
    return {
        "batch": int(batch),
        "audio_len": int(audio_len),
        "video_len": int(feeds["video"].shape[1]),
        "threads": 1,
        **{p: {"ms": round(v, 3), "speedup_vs_fp32": round(ms["fp32"] / v, 3)} for p, v in ms.items()},
    }
