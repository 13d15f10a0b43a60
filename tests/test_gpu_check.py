"""The GPU check on a machine like the GPU one: without the media packages (no av / opensmile / cv2),
TensorRT or onnxruntime-gpu, its imports and its GPU tests' imports work, and without a GPU it says so
and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"av", "opensmile", "cv2", "tensorrt", "pycuda", "rich", "typer", "matplotlib"}:
            raise ModuleNotFoundError(f"{name} is blocked (not on the GPU machine)", name=name)
sys.meta_path.insert(0, Block())
"""


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_without_a_gpu_it_says_so_and_exits_0():
    done = _python("import runpy; runpy.run_path('benchmarks/gpu_check.py', run_name='__main__')")
    assert done.returncode == 0, done.stderr
    assert "no CUDA GPU" in done.stdout


def test_its_gpu_tests_collect_without_media_packages():
    code = (
        "import pytest, sys; sys.exit(pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', "
        "'tests/test_attention.py', 'tests/test_train_gpu.py']))"
    )
    done = _python(code)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_mixed_precision_steps_are_finite_and_learn" in done.stdout
