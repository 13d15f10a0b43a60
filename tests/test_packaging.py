"""The package as users get it: layout, extras, the README's two lines, and a torch-free runtime."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[1]
PARTS = ("common", "runtime", "train", "export", "calibration")


def test_every_subpackage_is_packaged():
    """A folder with __init__.py missing from pyproject would vanish from the built wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    for part in PARTS:
        assert config["package-dir"][f"auxformer.{part}"] == part
        for init in (ROOT / part).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).parts
            assert "auxformer." + ".".join(rel) in listed, f"{init.parent} is not in pyproject packages"


def test_readme_quickstart_and_ci_agree():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart.*?```(?:bash)?\n(.*?)```", readme, re.S)
    assert block, "README needs a Quickstart code block"
    lines = [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) == 2, "the quickstart is exactly two lines: demo and tests"
    assert lines[0].endswith("just demo") and lines[1].endswith("just test")
    ci = (ROOT / ".ci" / "run").read_text()
    assert lines[1] in ci.splitlines(), ".ci/run must run the README's test line verbatim"


def test_runtime_never_imports_torch():
    code = (
        "import sys, auxformer.runtime, auxformer.train.corpus, auxformer.runtime.batching, "
        "auxformer.common.metrics, auxformer.runtime.manifest, auxformer.calibration; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_optional_dependency_names_the_extra():
    import importlib.util

    from auxformer.common.optional import MissingDependency, require

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    with pytest.raises(MissingDependency, match=r"pip install 'auxformer\[gpu\]'"):
        require("tensorrt")


def test_console_scripts_exist():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(config) >= {"auxformer-train", "auxformer-export", "auxformer-infer"}
    for name in ("auxformer-train", "auxformer-export", "auxformer-infer"):
        out = subprocess.run([name, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "Usage" in out.stdout, out.stderr


@pytest.mark.slow
def test_built_wheel_contains_every_part(tmp_path):
    pytest.importorskip("build")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    import zipfile

    (wheel,) = tmp_path.glob("auxformer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for part in PARTS:
        assert f"auxformer/{part}/__init__.py" in names
    assert "auxformer/train/model.py" in names and not any(n.startswith("tests/") for n in names)
    assert {"auxformer/runtime/media/models/expression.onnx", "auxformer/runtime/media/models/NOTICE.md"} <= names
