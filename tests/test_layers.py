"""The layering of docs/architecture.md is held by import-linter: the contracts in pyproject.toml pass
on this tree, and a planted upward import (the runtime importing training code) breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("common", "runtime", "calibration", "train", "export")
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))

pytestmark = pytest.mark.skipif(not Path(LINT).exists(), reason="import-linter is not installed (dev extra)")


def lint(tree: Path) -> subprocess.CompletedProcess:
    """lint-imports over the `auxformer` parts found under `tree` (a copy of the repository)."""
    env = {**os.environ, "PYTHONPATH": str(tree / "_pkg")}
    return subprocess.run([LINT, "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120)


def copy_tree(tmp_path: Path) -> Path:
    """The parts laid out as the `auxformer` namespace, so the copy is analysed instead of the install."""
    tree = tmp_path / "repo"
    tree.mkdir()
    shutil.copy(ROOT / "pyproject.toml", tree)
    for part in PARTS:
        shutil.copytree(ROOT / part, tree / "_pkg" / "auxformer" / part, ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def test_contracts_hold(tmp_path):
    result = lint(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_runtime_importing_training_breaks_the_layers(tmp_path):
    tree = copy_tree(tmp_path)
    session = tree / "_pkg" / "auxformer" / "runtime" / "session.py"
    session.write_text(session.read_text() + "\nimport auxformer.train  # planted\n")
    result = lint(tree)
    assert result.returncode != 0
    assert "auxformer.runtime is not allowed to import auxformer.train" in result.stdout


def test_runtime_importing_torch_breaks_the_contract(tmp_path):
    tree = copy_tree(tmp_path)
    prediction = tree / "_pkg" / "auxformer" / "runtime" / "prediction.py"
    prediction.write_text(prediction.read_text() + "\nimport torch  # planted\n")
    result = lint(tree)
    assert result.returncode != 0
    assert "auxformer.runtime.prediction -> torch" in result.stdout
