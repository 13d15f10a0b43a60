"""face_encoder.onnx: a dynamic batch of frames; the VGG-Face fc7 architecture and its key names."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

from auxformer.export.face_encoder import VggFaceFc7, export_face_encoder
from auxformer.runtime.onnxruntime_runner import inference_session


def small_encoder() -> nn.Module:
    """Stands in for VGG16 (which takes minutes to export here): same contract, [N,3,S,S] -> [N,D]."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 8)).eval()


def test_export_has_a_dynamic_frame_axis(tmp_path):
    encoder = small_encoder()
    path = export_face_encoder(encoder, tmp_path / "face_encoder.onnx", image_size=32)
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "frames"
    session = inference_session(path, "cpu")
    for frames in (1, 5):
        faces = np.random.default_rng(frames).uniform(-1, 1, (frames, 3, 32, 32)).astype(np.float32)
        (got,) = session.run(None, {"faces": faces})
        with torch.no_grad():
            expected = encoder(torch.from_numpy(faces)).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_state_dict_path_is_loaded_into_vggface(tmp_path):
    with torch.device("meta"):  # the shapes and names of VGG16-fc7 without 138 M parameters in memory
        model = VggFaceFc7()
        out = model(torch.empty(3, 3, 224, 224))
    assert tuple(out.shape) == (3, 4096)
    keys = list(model.state_dict())
    assert keys[:2] == ["conv1_1.weight", "conv1_1.bias"] and keys[-2:] == ["fc7.weight", "fc7.bias"]
    assert len(keys) == 2 * (13 + 2)
