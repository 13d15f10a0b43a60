"""`Session` on an ONNX model: torch-free, batch invariant, masks for missing modalities, temperature,
manifest checks, bad input as statuses, and concurrent calls."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

from auxformer.common.metrics import softmax
from auxformer.common.optional import MissingDependency
from auxformer.runtime import ManifestError, Session, Status
from auxformer.runtime.bucketing import plan_batches

from .export_support import tiny_export
from .runtime_support import LABELS, VIDEO_DIM, feature_clip, ragged_clips, with_manifest, write_npz


@pytest.fixture(scope="module")
def session() -> Session:
    return Session.load(tiny_export().path, device="cpu")


def _probs(prediction) -> np.ndarray:
    return np.array([prediction.probabilities[label] for label in LABELS])


def _max_diff(a, b) -> float:
    """Largest probability difference between two predictions, fused and per head."""
    assert a.label == b.label and a.present == b.present and a.heads.keys() == b.heads.keys()
    if a.probabilities is None:  # nothing present: no prediction on either side
        assert b.probabilities is None and a.status == b.status
        return 0.0
    diffs = [np.abs(_probs(a) - _probs(b)).max()]
    for head, probs in a.heads.items():
        assert (probs is None) == (b.heads[head] is None)
        if probs is not None:
            diffs.append(max(abs(probs[k] - b.heads[head][k]) for k in probs))
    return float(max(diffs))


def test_runtime_predicts_without_importing_torch(tmp_path):
    """A fresh interpreter imports the runtime, loads the ONNX model and predicts: torch stays out."""
    code = f"""
import json, sys
import numpy as np
from auxformer.runtime import Session
session = Session.load({str(tiny_export().path)!r}, device="cpu")
rng = np.random.default_rng(0)
clips = [{{"audio": rng.standard_normal((60, 130)), "video": rng.standard_normal((18, {VIDEO_DIM}))}} for _ in range(3)]
predictions = session.predict(clips, batch_size=2)
print(json.dumps({{"torch": "torch" in sys.modules, "labels": [p.label for p in predictions]}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["torch"] is False
    assert len(result["labels"]) == 3 and set(result["labels"]) <= set(LABELS)


def test_a_clip_does_not_depend_on_its_batch(session):
    clips = ragged_clips(24, seed=3)
    alone = [session.predict_one(clip) for clip in clips]
    rng = np.random.default_rng(0)
    for batch_size in (5, 24):
        order = rng.permutation(len(clips))
        batched = session.predict([clips[i] for i in order], batch_size=batch_size)
        for k, i in enumerate(order):
            assert batched[k].clip_id == clips[i].clip_id  # results come back in the order given
            assert _max_diff(alone[i], batched[k]) <= 1e-5


def test_batches_group_similar_lengths():
    rng = np.random.default_rng(1)
    lengths = [(int(a), int(a * 0.3)) for a in rng.integers(10, 300, 50)]
    batches = plan_batches(lengths, 8)
    assert sorted(i for b in batches for i in b) == list(range(50))
    assert max(len(b) for b in batches) == 8

    def padded(groups):
        return sum(len(g) * max(lengths[i][0] for i in g) for g in groups)

    unsorted = [list(range(i, min(i + 8, 50))) for i in range(0, 50, 8)]
    assert padded(batches) < 0.8 * padded(unsorted)
    ends = [max(lengths[i][0] for i in b) for b in batches]
    assert ends == sorted(ends)


def test_an_absent_modality_is_a_false_mask_and_its_head_says_none(session):
    full = feature_clip("full", 150, 45, seed=5)
    no_audio = feature_clip("no_audio", 150, 45, seed=5, audio=False)  # no audio stream at all: 0 frames
    no_face = feature_clip("no_face", 150, 45, seed=5, video=False)  # frames, none with a face
    by_id = {p.clip_id: p for p in session.predict([full, no_audio, no_face], batch_size=3)}
    assert by_id["full"].status is Status.OK and all(by_id["full"].heads.values())
    p = by_id["no_audio"]
    assert p.status is Status.NO_AUDIO and p.present == {"audio": False, "video": True}
    assert p.heads["audio"] is None and p.heads["video"] is not None and p.heads["av"] is not None
    p = by_id["no_face"]
    assert p.status is Status.NO_FACE and p.present == {"audio": True, "video": False}
    assert p.heads["video"] is None and p.heads["audio"] is not None

    # forcing a modality out is the same as the clip not having it
    forced = session.predict([full], missing="audio")[0]
    assert forced.present == {"audio": False, "video": True} and forced.heads["audio"] is None
    assert "audio removed on request" in forced.reason
    assert _max_diff(forced, session.predict([full.without("audio")])[0]) <= 1e-5
    assert _max_diff(session.predict([full], missing="video")[0], by_id["no_face"]) <= 1e-5
    with pytest.raises(ValueError, match="missing must be"):
        session.predict([full], missing="face")


def test_a_clip_with_nothing_present_is_reported_not_guessed(session):
    (p,) = session.predict([feature_clip("nothing", 80, 24, audio=False, video=False)])
    assert p.status is Status.EMPTY and p.label is None and p.probabilities is None
    assert "nothing to predict from" in p.reason


def test_temperature_from_the_manifest_changes_probabilities_not_labels(tmp_path, session):
    warm = Session.load(
        with_manifest(
            tiny_export().path,
            tmp_path / "t2.onnx",
            prediction={"temperature": 2.0, "head_temperatures": {"audio": 0.5}},
        ),
        device="cpu",
    )
    clips = ragged_clips(6, seed=9)
    for cold, hot in zip(session.predict(clips), warm.predict(clips), strict=True):
        if cold.probabilities is None:
            continue
        assert cold.label == hot.label
        # softmax(z / 2) from softmax(z): log-probabilities halve
        np.testing.assert_allclose(_probs(hot), softmax(np.log(_probs(cold)) / 2.0), atol=1e-9)
        assert np.abs(_probs(hot) - _probs(cold)).max() > 1e-3
        if cold.heads["audio"] is not None:
            a, b = (np.array(list(p.heads["audio"].values())) for p in (cold, hot))
            np.testing.assert_allclose(b, softmax(np.log(a) / 0.5), atol=1e-9)
        assert hot.heads["video"] == cold.heads["video"]  # no temperature given for it: 1.0


def test_features_that_do_not_fit_the_model_are_refused(tmp_path, session):
    wrong = feature_clip("wrong", 50, 15, video_dim=8)
    with pytest.raises(ManifestError, match="video features have 8 dims, the model expects 16"):
        session.predict([wrong])
    # from a file, the same mismatch is that file's status, and the rest is predicted
    path = write_npz(wrong, tmp_path / "wrong.npz")
    good = write_npz(feature_clip("good", 50, 15), tmp_path / "good.npz")
    bad, ok = session.predict([path, good])
    assert bad.status is Status.FAILED and "expects 16" in bad.reason and bad.source == str(path)
    assert ok.status is Status.OK and ok.label in LABELS


def test_a_model_whose_graph_and_manifest_disagree_does_not_load(tmp_path):
    with pytest.raises(ManifestError, match="input video has 16 features, its manifest says 32"):
        Session.load(with_manifest(tiny_export().path, tmp_path / "dim.onnx", features={"video_dim": 32}), device="cpu")
    heads = {"heads": ["av", "face"], "prediction": {"head_modalities": {"av": ("audio", "video"), "face": ("video",)}}}
    with pytest.raises(ManifestError, match=r"logits_face"):
        Session.load(with_manifest(tiny_export().path, tmp_path / "heads.onnx", **heads), device="cpu")


def test_inputs_may_be_arrays_feature_files_or_paths(tmp_path, session):
    clip = feature_clip("k", 70, 21, seed=11)
    arrays = {"audio": clip.audio, "video": clip.video, "video_mask": clip.video_mask}  # audio mask left out
    npz = write_npz(clip, tmp_path / "k.npz")
    (tmp_path / "torn.npz").write_bytes(npz.read_bytes()[:100])
    a, b, c, missing, torn = session.predict([clip, arrays, npz, tmp_path / "gone.mp4", tmp_path / "torn.npz"])
    assert _max_diff(a, b) == 0 and _max_diff(a, c) == 0
    assert b.clip_id == "clip1" and c.clip_id == "k" and c.source == str(npz)
    assert missing.status is Status.FAILED and missing.reason == "no such file"
    assert torn.status is Status.FAILED and "not a feature file" in torn.reason
    with pytest.raises(TypeError, match="a clip is"):
        session.predict([42])


def test_media_paths_without_the_media_packages_say_what_is_missing(tmp_path, monkeypatch):
    from auxformer.runtime.features import FeatureSettings

    settings = FeatureSettings(video_embedder="pixels", pixels_size=4)  # features the front end can make for this model
    features = {"video_embedder": settings.video_embedder, "settings": settings.to_dict()}
    model = with_manifest(tiny_export().path, tmp_path / "model.onnx", features=features)
    session = Session.load(model, device="cpu")  # its own front end, not yet built
    monkeypatch.setitem(sys.modules, "opensmile", None)  # as in an install without the media packages
    (tmp_path / "a.mp4").write_bytes(b"\0" * 100)
    with pytest.raises(MissingDependency, match=r"opensmile is needed for audio features: .*auxformer\[media\]"):
        session.predict([tmp_path / "a.mp4"])
    # feature arrays need none of them
    (p,) = session.predict([feature_clip("arrays", 50, 15)])
    assert p.status is Status.OK and p.label in LABELS


def test_concurrent_predict_calls_agree_with_sequential_ones(session):
    sets = [ragged_clips(10, seed=20 + k) for k in range(4)]
    sequential = [session.predict(clips, batch_size=1 + k) for k, clips in enumerate(sets)]
    concurrent: list = [None] * len(sets)
    errors: list[BaseException] = []
    start = threading.Barrier(len(sets))

    def work(k: int) -> None:
        try:
            start.wait()
            for _ in range(3):
                concurrent[k] = session.predict(sets[k], batch_size=1 + k)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(sets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for seq, conc in zip(sequential, concurrent, strict=True):
        for a, b in zip(seq, conc, strict=True):
            assert a.status == b.status
            if a.probabilities is not None:
                assert _max_diff(a, b) <= 1e-6
