"""`face_encoder.onnx`: the VGG-Face embedder (VGG16 up to fc7, 4096 dims) with a dynamic batch of
frames, exported beside the model when its video features come from `vggface`.

Input `faces [frames, 3, 224, 224] f32` (RGB crops scaled to [-1, 1], docs/model.md, "Inputs"), output
`embeddings [frames, 4096] f32`. The weights come as a torch module or a state-dict file whose keys follow
the common VGG-Face port naming (`conv1_1.weight` ... `fc7.bias`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from auxformer.common import atomic
from auxformer.common.optional import require

from .onnx_export import ExportError, dynamo_export

# VGG16: channels of each conv block, three convs in the last three blocks, two in the first two
_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
INPUT = "faces"
OUTPUT = "embeddings"
EMBEDDER = "vggface"


class VggFaceFc7(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        channels = 3
        for b, (width, convs) in enumerate(_BLOCKS, start=1):
            for c in range(1, convs + 1):
                setattr(self, f"conv{b}_{c}", nn.Conv2d(channels, width, 3, padding=1))
                channels = width
        self.fc6 = nn.Linear(512 * 7 * 7, 4096)
        self.fc7 = nn.Linear(4096, 4096)

    def forward(self, faces: Tensor) -> Tensor:
        x = faces
        for b, (_, convs) in enumerate(_BLOCKS, start=1):
            for c in range(1, convs + 1):
                x = torch.relu(getattr(self, f"conv{b}_{c}")(x))
            x = nn.functional.max_pool2d(x, 2)
        x = torch.relu(self.fc6(x.flatten(1)))
        return torch.relu(self.fc7(x))


def load_encoder(weights: nn.Module | str | Path) -> nn.Module:
    if isinstance(weights, nn.Module):
        return weights.eval()
    loaded = torch.load(weights, map_location="cpu", weights_only=False)
    if isinstance(loaded, nn.Module):
        return loaded.eval()
    model = VggFaceFc7()
    model.load_state_dict(loaded)
    return model.eval()


def export_face_encoder(
    weights: nn.Module | str | Path, out_path: str | Path, opset: int = 18, image_size: int = 224
) -> Path:
    """Export `faces [frames, 3, S, S] -> embeddings [frames, D]` with `frames` dynamic."""
    onnx = require("onnx")
    encoder = load_encoder(weights)
    example = torch.randn(2, 3, image_size, image_size)  # 2 frames: a size-1 axis would be fixed
    frames = torch.export.Dim("frames", min=1)
    # positional dynamic shapes: the module's argument may have any name
    proto = dynamo_export(encoder, (example,), [INPUT], [OUTPUT], ({0: frames},), opset)
    for vi in (*proto.graph.input, *proto.graph.output):
        first = vi.type.tensor_type.shape.dim[0]
        if first.dim_param != "frames":
            raise ExportError(f"face encoder: {vi.name} axis 0 (frames) came out as {first.dim_value}")
    onnx.checker.check_model(proto)
    out_path = Path(out_path)
    with atomic.atomic_path(out_path) as tmp:
        onnx.save_model(proto, str(tmp))
    return out_path
