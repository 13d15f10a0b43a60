"""The media front end is part of the torch-free runtime, and its heavy packages load only when used."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "auxformer.runtime.features",
    "auxformer.runtime.extract_pool",
    "auxformer.runtime.feature_cache",
    "auxformer.train.feature_cli",
    "auxformer.train.prepare",
    "auxformer.train.corpora.cremad",
    "auxformer.train.corpora.msp_improv",
    "auxformer.train.corpora.folder",
    "auxformer.runtime.media.vggface",
]


def test_front_end_imports_neither_torch_nor_its_media_libraries_up_front():
    code = "; ".join(
        [
            "import sys",
            *(f"import {m}" for m in MODULES),
            "heavy = {'torch', 'cv2', 'av', 'opensmile', 'onnxruntime', 'onnx'} & set(sys.modules)",
            "print(sorted(heavy))",
        ]
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
