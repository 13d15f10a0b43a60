"""The `expression` embedder (the default): aligned crops -> batched onnxruntime -> [T, dim], zero rows
where there is no face."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

from auxformer.runtime.features import FeatureExtractor, FeatureSettings  # noqa: E402
from auxformer.runtime.media.align import align_face  # noqa: E402
from auxformer.runtime.media.expression import LABELS, ExpressionModel, to_input  # noqa: E402
from auxformer.runtime.media.face_embedders import ExpressionEmbedder, build_embedder  # noqa: E402
from auxformer.runtime.media.faces import FaceTrack  # noqa: E402


def portrait() -> np.ndarray:
    """The real face scikit-image ships (NASA's public-domain portrait), RGB."""
    return pytest.importorskip("skimage.data").astronaut()


BOX = np.array([170.0, 55.0, 280.0, 170.0], np.float32)  # the portrait's face
EYES = np.array([[206.0, 101.0], [247.0, 103.0]], np.float32)  # its eye centres, image-left first


def track(valid: list[bool], eyes: bool) -> FaceTrack:
    n = len(valid)
    return FaceTrack(np.tile(BOX, (n, 1)), np.array(valid), np.arange(n), np.tile(EYES, (n, 1, 1)) if eyes else None)


def test_default_settings_use_the_expression_embedder():
    settings = FeatureSettings()
    assert settings.video_embedder == "expression" and settings.video_dim == 128
    extractor = FeatureExtractor(settings)
    assert isinstance(extractor.embedder, ExpressionEmbedder) and extractor.embedder.dim == 128


def test_shapes_masks_and_zero_rows():
    image = portrait()
    frames = [image, image[:, ::-1].copy(), image, np.zeros_like(image), image]
    valid = [True, True, False, False, True]
    embedder = build_embedder("expression")
    out = embedder(frames, track(valid, eyes=True))
    assert out.shape == (5, 128) and out.dtype == np.float32
    assert not out[~np.array(valid)].any()
    assert (np.abs(out[np.array(valid)]).sum(1) > 0).all()
    np.testing.assert_allclose(out[0], out[4], atol=1e-6)  # same frame, same features
    assert np.abs(out[0] - out[1]).max() > 1e-3  # another picture, other features
    # no face at all: all zeros, no onnxruntime call on an empty batch
    assert not embedder(frames[:2], track([False, False], eyes=True)).any()
    assert embedder([], track([], eyes=False)).shape == (0, 128)


def test_batches_give_the_same_rows_as_one_call():
    image = portrait()
    rng = np.random.default_rng(0)
    frames = [np.roll(image, int(s), axis=1) for s in rng.integers(-8, 8, 7)]
    embedder = build_embedder("expression")
    whole = embedder(frames, track([True] * 7, eyes=False))
    embedder.model.batch = 3  # three onnxruntime calls: 3 + 3 + 1 crops
    np.testing.assert_allclose(embedder(frames, track([True] * 7, eyes=False)), whole, atol=1e-5)


def test_eyes_align_the_crop_and_logits_can_be_appended():
    image = portrait()
    with_eyes, box_only = track([True], eyes=True), track([True], eyes=False)
    embedder = build_embedder("expression", expression_logits=True)
    assert embedder.dim == 128 + len(LABELS)
    aligned, boxed = embedder([image], with_eyes)[0], embedder([image], box_only)[0]
    assert np.abs(aligned - boxed).max() > 1e-3  # the eyes changed the crop
    # the appended part is the model's own logits on the grey frame's aligned crop: it calls the portrait happy
    grey = align_face(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), BOX, EYES, 64, 0.2)
    cut_first = cv2.cvtColor(align_face(image, BOX, EYES, 64, 0.2), cv2.COLOR_RGB2GRAY)
    assert np.abs(grey.astype(int) - cut_first).max() <= 2  # grey first or cut first: rounding apart
    embedding, logits = ExpressionModel().run(grey[None])
    np.testing.assert_allclose(aligned, np.concatenate([embedding[0], logits[0]]), atol=1e-5)
    assert LABELS[int(np.argmax(aligned[128:]))] == "happy"


def test_input_scaling_is_fers():
    grey = np.array([[0, 255, 128]], np.uint8)
    np.testing.assert_allclose(to_input(grey), (grey / 255.0 - 0.5) * 2.0, atol=1e-6)
