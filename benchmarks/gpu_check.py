"""The prepared GPU check, one command: `just gpu-check`, or `python benchmarks/gpu_check.py` where there is
no `just`. For a machine with CUDA PyTorch and nothing else of ours (no TensorRT, no onnxruntime-gpu, no
media packages, no network): runs the GPU-marked tests that need only PyTorch, then the training
benchmark (old path against new) in fp32, bf16 and fp16, and prints one table. About 2-4 minutes on one
recent GPU; the budget is 8. Without a GPU it says so and exits 0. Exit 1 when a test fails.

    python benchmarks/gpu_check.py            # in the repository root, after `pip install --no-deps -e .`
    python benchmarks/gpu_check.py --json gpu-check.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_train beside this file

import bench_train  # noqa: E402  (imports only torch, numpy and auxformer's training core)

# GPU-marked tests that need nothing but PyTorch (test_tensorrt_gpu*.py need TensorRT: not here)
TESTS = ("tests/test_attention.py", "tests/test_train_gpu.py")
PRECISIONS = ("fp32", "bf16", "fp16")
TEST_TIMEOUT_S = 240
CLIPS, REPEATS = 256, 3  # the trainer's bucket of 8 batches of 32


def run_tests() -> dict:
    """pytest -m gpu over TESTS in a child process: counts and the failures' names."""
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"ran": False, "summary": "pytest is not installed: tests not run", "failed": []}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", *TESTS]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TEST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"ran": True, "summary": f"timed out after {TEST_TIMEOUT_S} s", "failed": ["(timeout)"]}
    lines = done.stdout.strip().splitlines()
    summary = lines[-1].strip("= ") if lines else done.stderr.strip()[-300:]
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, flags=re.M)
    if done.returncode not in (0, 5) and not failed:  # 5: nothing collected
        failed = [f"pytest exit {done.returncode}"]
    return {"ran": True, "summary": summary, "failed": failed, "output": done.stdout[-4000:]}


def import_core() -> None:
    """What the check runs, imported up front: a missing package shows here, with or without a GPU."""
    import auxformer.train.batching
    import auxformer.train.data
    import auxformer.train.demo_corpus
    import auxformer.train.loss
    import auxformer.train.model
    import auxformer.train.precision  # noqa: F401


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import torch

    import_core()
    if not torch.cuda.is_available():
        print(f"gpu-check: no CUDA GPU visible to torch {torch.__version__}: nothing measured (exit 0)")
        return 0
    t0 = time.perf_counter()
    device = torch.device("cuda")
    print(f"gpu-check on {torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    tests = run_tests()
    print(f"tests ({', '.join(TESTS)}, -m gpu): {tests['summary']}", flush=True)
    results = bench_train.run("cuda", [0], PRECISIONS, CLIPS, 32, REPEATS, lambda m: print(m, flush=True))
    print()
    print(f"gpu-check: {torch.cuda.get_device_name(device)}, {time.perf_counter() - t0:.0f} s")
    print(f"tests: {tests['summary']}" + (f"; failed: {', '.join(tests['failed'])}" if tests["failed"] else ""))
    print(
        f"training clips/s, paper configuration, batch 32, {CLIPS} CREMA-D-like clips, median of {REPEATS} passes; "
        "peak: a step on the longest batch above model and data"
    )
    print(bench_train.table(results))
    if tests["failed"] and "output" in tests:
        print("\n" + tests["output"])
    if args.json:
        record = {"tests": tests, "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(record, indent=2))
    return 1 if tests["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
