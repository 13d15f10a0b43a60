"""VGG-Face: the vgg_face_dag.pth layout read without torch, converted to ONNX, run by onnxruntime in the
front end and exported as `face_encoder.onnx` by `auxformer-export --face-weights`: one graph for both.

The real weights are 580 MB; a narrow network with the same layer names and layout stands in for
them, and PyTorch (test-only here) is the independent reference the ONNX graph must match.
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

from auxformer.export.onnx_export import ExportError
from auxformer.export.pipeline import FACE_ENCODER_FILE, ExportOutcome, ExportRequest, export_face_encoder
from auxformer.runtime.features import FeatureSettings, extract
from auxformer.runtime.manifest import FeatureSpec, Manifest, ModelRecord, PredictionSpec
from auxformer.runtime.media.torch_state import StateDictError, read_state_dict
from auxformer.runtime.media.vggface import CONV_BLOCKS, PREPROCESS, VggFace, conv_names, ensure_onnx

from .media_factory import make_clip

WIDTHS = (2, 3, 4, 4, 4)  # channels per block (VGG16 has 64, 128, 256, 512, 512)
FC = 8  # fc6 / fc7 width (VGG16 has 4096)


def tiny_vgg_face_dag(seed: int = 0) -> collections.OrderedDict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state, cin = collections.OrderedDict(), 3
    names = iter(conv_names())
    for width, convs in zip(WIDTHS, CONV_BLOCKS, strict=True):
        for _ in range(convs):
            name = next(names)
            state[f"{name}.weight"] = torch.randn(width, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
            state[f"{name}.bias"] = torch.randn(width, generator=g) * 0.1
            cin = width
    for name, fan_in in (("fc6", cin * 7 * 7), ("fc7", FC), ("fc8", FC)):
        state[f"{name}.weight"] = torch.randn(FC if name != "fc8" else 5, fan_in, generator=g) * (2 / fan_in) ** 0.5
        state[f"{name}.bias"] = torch.randn(FC if name != "fc8" else 5, generator=g) * 0.1
    return state


def reference_fc7(state: dict[str, torch.Tensor], crops: np.ndarray, preprocess: str = "unit") -> np.ndarray:
    """VGG16 up to relu7 in PyTorch, as vgg_face_dag defines it, on uint8 RGB crops (`unit`: scaled to [-1, 1])."""
    mean, scale = PREPROCESS[preprocess]
    x = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() - torch.tensor(mean).view(1, 3, 1, 1)) * scale
    names = iter(conv_names())
    for convs in CONV_BLOCKS:
        for _ in range(convs):
            name = next(names)
            x = F.relu(F.conv2d(x, state[f"{name}.weight"], state[f"{name}.bias"], padding=1))
        x = F.max_pool2d(x, 2, 2)
    x = x.flatten(1)
    for name in ("fc6", "fc7"):
        x = F.relu(F.linear(x, state[f"{name}.weight"], state[f"{name}.bias"]))
    return x.numpy()


@pytest.fixture
def weights(tmp_path, monkeypatch):
    monkeypatch.setenv("AUXFORMER_CACHE", str(tmp_path / "cache"))
    state = tiny_vgg_face_dag()
    path = tmp_path / "vgg_face_dag.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)  # the 2017 file predates zip archives
    return path, state


def test_onnx_graph_matches_pytorch_and_is_converted_once(weights, tmp_path):
    path, state = weights
    crops = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    model = VggFace(str(path))
    assert model.dim == FC
    np.testing.assert_allclose(model.embed(crops), reference_fc7(state, crops), rtol=1e-4, atol=1e-4)
    converted = list((tmp_path / "cache" / "vggface").glob("*.onnx"))
    assert len(converted) == 1
    stamp = converted[0].stat().st_mtime_ns
    VggFace(str(path))
    assert converted[0].stat().st_mtime_ns == stamp


def test_vggface_embedder_in_the_front_end(weights, tmp_path):
    path, _ = weights
    clip = extract(
        make_clip(tmp_path / "talk.mp4", seconds=0.4, size=128),
        FeatureSettings(video_embedder="vggface", vggface_weights=str(path)),
    )
    assert clip.video.shape == (10, FC) and clip.video_mask.any()
    assert (clip.video[clip.video_mask] >= 0).all()  # after relu7


def vggface_manifest(video_dim: int, preprocess: str = "unit") -> Manifest:
    """What Source.manifest records for a model trained on vggface features."""
    settings = FeatureSettings(video_embedder="vggface", vggface_preprocess=preprocess)
    return Manifest(
        labels=["a", "b"],
        features=FeatureSpec(audio_dim=130, video_dim=video_dim, video_embedder="vggface", settings=settings.to_dict()),
        model=ModelRecord("auxformer", {}),
        heads=["av"],
        prediction=PredictionSpec("mean_logits", {"av": ("audio", "video")}),
    )


def export_encoder(weights, out, manifest: Manifest) -> ExportOutcome:
    outcome = ExportOutcome(onnx=None)  # type: ignore[arg-type]  # the model itself is not needed here
    request = ExportRequest(source=out, out=out, face_weights=weights)
    export_face_encoder(request, manifest, outcome, Console(quiet=True))
    return outcome


@pytest.mark.parametrize("preprocess", ["unit", "dag-mean"])
def test_exported_face_encoder_is_the_front_ends_graph(weights, tmp_path, preprocess):
    path, state = weights
    outcome = export_encoder(path, tmp_path / "out", vggface_manifest(FC, preprocess))
    encoder = tmp_path / "out" / FACE_ENCODER_FILE
    assert outcome.files == [encoder]
    # the graph the front end runs for features made with these settings, byte for byte
    assert encoder.read_bytes() == ensure_onnx(path, preprocess).read_bytes()
    graph = onnx.load(str(encoder)).graph
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in (*graph.input, *graph.output)]
    assert [v.name for v in (*graph.input, *graph.output)] == ["faces", "embeddings"]
    assert dims == [["frames", 224, 224, 3], ["frames", FC]]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    session = ort.InferenceSession(str(encoder), providers=["CPUExecutionProvider"])
    for frames in (1, 4):
        faces = np.random.default_rng(frames).integers(0, 256, (frames, 224, 224, 3), dtype=np.uint8)
        (got,) = session.run(None, {"faces": faces})
        np.testing.assert_allclose(got, reference_fc7(state, faces, preprocess), rtol=1e-4, atol=1e-4)


def test_face_encoder_export_refuses_weights_that_do_not_fit(weights, tmp_path):
    path, _ = weights
    with pytest.raises(ExportError, match="the embedder makes 8-dim features, the model reads 4096"):
        export_encoder(path, tmp_path / "wide", vggface_manifest(4096))
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")
    with pytest.raises(ExportError, match=r"refusing to load torch\.nn"):  # never unpickles a module
        export_encoder(tmp_path / "module.pth", tmp_path / "module", vggface_manifest(FC))
    torch.save({"fc7.weight": torch.zeros(FC, FC)}, tmp_path / "partial.pth")
    with pytest.raises(ExportError, match=r"not a vgg_face_dag state dict: missing conv1_1\.weight"):
        export_encoder(tmp_path / "partial.pth", tmp_path / "partial", vggface_manifest(FC))
    assert not any(tmp_path.glob("*/" + FACE_ENCODER_FILE))
    assert export_encoder(None, tmp_path / "none", vggface_manifest(FC)).files == []  # no weights: a notice


@pytest.mark.parametrize("zip_format", [True, False])
def test_state_dict_reader_matches_torch_load(tmp_path, zip_format):
    state = tiny_vgg_face_dag(1)
    state["view"] = torch.arange(10.0)[3:7]  # a tensor that shares a larger storage
    state["strided"] = torch.randn(4, 5).t()
    path = tmp_path / "w.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    loaded = read_state_dict(path)
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        np.testing.assert_array_equal(loaded[name], tensor.numpy())


def test_state_dict_reader_refuses_pickled_objects(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")
    with pytest.raises(StateDictError, match=r"refusing to load torch\.nn"):
        read_state_dict(tmp_path / "module.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(StateDictError):
        read_state_dict(tmp_path / "junk.pth")


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_legacy_pth_cannot_run_code_from_its_header(tmp_path):
    import pickle

    marker = tmp_path / "ran"
    (tmp_path / "evil.pth").write_bytes(pickle.dumps(_RunsCode(str(marker))))
    with pytest.raises(StateDictError, match="refusing to load"):
        read_state_dict(tmp_path / "evil.pth")
    assert not marker.exists()


def test_a_tensor_reaching_outside_its_storage_is_refused():
    import numpy as np

    from auxformer.runtime.media.torch_state import _TensorRef

    with pytest.raises(StateDictError, match="outside its storage"):
        _TensorRef(np.zeros(10, np.float32), 4, (4, 4), (4, 1)).array()
    assert _TensorRef(np.arange(12, dtype=np.float32), 0, (3, 4), (4, 1)).array().shape == (3, 4)
