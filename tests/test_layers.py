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


@pytest.mark.parametrize(
    ("planted", "broken"),
    [
        ({"session.py": "import auxformer.train"}, "auxformer.runtime is not allowed to import auxformer.train"),
        ({"prediction.py": "import torch"}, "auxformer.runtime.prediction -> torch"),
        (  # session -> a new module -> session
            {"session.py": "from . import fallback", "fallback.py": "from . import session"},
            "No cycles are allowed in auxformer.runtime",
        ),
    ],
    ids=["upward import", "torch in the runtime", "cycle"],
)
def test_a_planted_import_breaks_a_contract(tmp_path, planted, broken):
    tree = copy_tree(tmp_path)
    runtime = tree / "_pkg" / "auxformer" / "runtime"
    for module, line in planted.items():
        path = runtime / module
        path.write_text((path.read_text() if path.exists() else "") + f"\n{line}  # planted\n")
    result = lint(tree)
    assert result.returncode != 0
    assert broken in result.stdout
