"""What `auxformer-export` is asked to do, and the default of every setting. Torch-free, so the CLI makes
its options (and `--help`) from these fields without loading the exporter."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .shapes import ProfileOverrides
from .tensorrt_build import EngineOptions

DEFAULT_OPSET = 18  # >= 17 for the native LayerNormalization op
DEFAULT_MAX_CLIPS = 512  # verification clips


@dataclass
class ExportRequest:
    """What to export and how; `auxformer-export`'s options are made from these fields (and their defaults)."""

    source: Path
    out: Path | None = None  # None: exports/<run name>
    fp16: bool = False
    int8: bool = False
    calib: Path | None = None  # feature corpus for INT8 calibration
    calib_clips: int = 512
    calib_method: str = "minmax"
    trt_calibrator: bool = False  # TensorRT < 10: implicit calibration instead of the Q/DQ model
    opset: int = DEFAULT_OPSET
    features: Path | None = None  # feature corpus to verify on (default: the run's dev + test clips)
    max_clips: int = DEFAULT_MAX_CLIPS
    triton: Path | None = None
    profile: ProfileOverrides = field(default_factory=ProfileOverrides)
    engine: bool = True  # build a TensorRT engine when --fp16 / --int8 asks for one
    tensorrt: EngineOptions = field(default_factory=EngineOptions)  # its precision follows fp16 / int8
    face_weights: Path | None = None
    threads: int = 0  # CPU threads for PyTorch and onnxruntime during verification (0: their defaults)

    def __post_init__(self) -> None:
        if self.out is None:
            self.out = Path("exports") / (self.source.name if self.source.is_dir() else self.source.parent.name)

    @property
    def precisions(self) -> list[str]:
        return ["fp32", *(["fp16"] if self.fp16 else []), *(["int8"] if self.int8 else [])]
