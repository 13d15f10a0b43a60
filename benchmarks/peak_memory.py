"""Peak memory of an `auxformer-infer` run on a folder of feature files with two oversized clips: good
3-s clips, a 59-s clip (5900 audio frames, 1770 video frames) and a 200000-frame `.npz`.

    python benchmarks/peak_memory.py exports/demo/model.onnx              # the default budget
    python benchmarks/peak_memory.py model.onnx --budget-gib 1.5 --json    # what tests/test_bounds.py runs

`auxformer-infer` runs in a fresh process started by a small wrapper process, whose RUSAGE_CHILDREN
after the run is the predicting process's peak RSS (a child started directly by this script would
inherit this script's own peak in ru_maxrss). Prints one row per clip (status, reason, read from the
run's predictions.jsonl) and the peak.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from auxformer.runtime.bounds import GIB, MemoryBudget

MINUTE = (5900, 1770)  # 59 s: audio at 100 fps, video at 30 fps
HUGE_AUDIO = 200_000
TIMEOUT_S = 600

WRAPPER = f"""
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout={TIMEOUT_S})
sys.stderr.write(done.stderr)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kilobytes on Linux
print(json.dumps({{"rc": done.returncode, "stdout": done.stdout, "peak_rss": peak}}))
"""


def write_folder(folder: Path, video_dim: int, good: int) -> None:
    rng = np.random.default_rng(0)
    shapes = {f"good{i}": (300, 90) for i in range(good)} | {"minute": MINUTE, "huge": (HUGE_AUDIO, 30)}
    for name, (audio_len, video_len) in shapes.items():
        audio = rng.standard_normal((audio_len, 130), dtype=np.float32)
        video = rng.standard_normal((video_len, video_dim), dtype=np.float32)
        np.savez(folder / f"{name}.npz", audio=audio, video=video)


def measure(model: str, budget: int | None, good: int = 6) -> dict:
    """{"rows": {clip id: [status, reason]}, "budget": bytes, "peak_rss": bytes} of one run."""
    from auxformer.runtime.onnxruntime_runner import OnnxRuntimeRunner

    video_dim = OnnxRuntimeRunner(model, device="cpu").manifest.video_dim
    with tempfile.TemporaryDirectory(prefix="peak-memory-") as tmp:
        clips, out = Path(tmp) / "clips", Path(tmp) / "out"
        clips.mkdir()
        write_folder(clips, video_dim, good)
        infer = Path(sys.executable).with_name("auxformer-infer")
        command = [str(infer), str(clips), "--model", model, "--out", str(out), "--no-progress", "--no-cache"]
        command += ["--device", "cpu", "--threads", "1"]
        if budget is not None:
            command += ["--memory-gib", repr(budget / GIB)]
        wrapper = [sys.executable, "-c", WRAPPER, *command]
        done = subprocess.run(wrapper, capture_output=True, text=True, timeout=TIMEOUT_S + 60, check=True)
        run = json.loads(done.stdout.strip().splitlines()[-1])
        if run["rc"] != 0:
            raise RuntimeError(f"auxformer-infer failed (exit {run['rc']}):\n{run['stdout']}{done.stderr}")
        lines = (out / "predictions.jsonl").read_text().splitlines()
    rows = {r["clip_id"].removesuffix(".npz"): [r["status"], r["reason"]] for r in map(json.loads, lines)}
    return {
        "rows": rows,
        "budget": budget if budget is not None else MemoryBudget().limit(),
        "peak_rss": run["peak_rss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model.onnx")
    parser.add_argument("--budget-gib", type=float, help="memory budget per batch (default: MemoryBudget())")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    budget = int(args.budget_gib * GIB) if args.budget_gib else None
    result = measure(args.model, budget)
    if args.json:
        print(json.dumps(result))
        return
    for clip_id, (status, reason) in sorted(result["rows"].items()):
        print(f"{clip_id:8} {status:8} {reason}")
    print(f"budget {result['budget'] / GIB:.2f} GiB, peak RSS {result['peak_rss'] / GIB:.2f} GiB")


if __name__ == "__main__":
    main()
