"""The classical baseline: the functionals model, its run (same split and report as a network), its CLI
and protocol entries, and the feature corpus that carries the functionals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from auxformer.runtime.contracts import ClipFeatures
from auxformer.train.classical import ClassicalTrainer
from auxformer.train.cli import app
from auxformer.train.config import ClassicalConfig, TrainConfig
from auxformer.train.corpus import CorpusError, CorpusWriter, FeatureCorpus
from auxformer.train.functionals_model import FunctionalsLinear
from auxformer.train.protocol import ProtocolConfig, plan
from auxformer.train.splits import leave_one_speaker_out, speaker_split

LABELS = ["calm", "loud", "sharp"]


def blobs(n_per_class: int, dim: int, seed: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian classes around fixed random centres (the same centres for every seed)."""
    centres = np.random.default_rng(99).normal(0, 3, (len(LABELS), dim))
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(LABELS)), n_per_class)
    return centres[y] + rng.normal(0, spread, (len(y), dim)), y


def test_fit_reaches_the_penalised_optimum_and_separates_classes():
    x, y = blobs(20, 40, seed=0)
    x[:, 5] = 7.0  # a constant feature must not break the standardisation
    model = FunctionalsLinear.fit(x, y, LABELS, "eGeMAPSv02", l2=0.1)
    assert model.info["converged"]
    # the dual solution is the primal optimum: the primal gradient vanishes there
    z = (x - model.mean) / model.scale
    p = model.probs(x).astype(np.float64)
    delta = (p - np.eye(3)[y]) / len(y)
    assert np.abs(z.T @ delta + 0.1 * model.weights).max() < 1e-4
    assert np.abs(delta.sum(0)).max() < 1e-4
    test_x, test_y = blobs(20, 40, seed=1)
    test_x[:, 5] = 7.0
    assert (model.logits(test_x).argmax(1) == test_y).mean() > 0.9
    # a stronger penalty shrinks the weights
    assert np.linalg.norm(FunctionalsLinear.fit(x, y, LABELS, "eGeMAPSv02", l2=10.0).weights) < np.linalg.norm(
        model.weights
    )


def test_balanced_weights_favour_a_rare_class():
    x, y = blobs(30, 10, seed=2, spread=3.0)
    keep = (y != 2) | (np.arange(len(y)) % 10 == 0)  # class 2 keeps 3 clips of 30
    plain = FunctionalsLinear.fit(x[keep], y[keep], LABELS, "eGeMAPSv02", 1.0, "none")
    balanced = FunctionalsLinear.fit(x[keep], y[keep], LABELS, "eGeMAPSv02", 1.0, "balanced")
    test_x, _ = blobs(30, 10, seed=3, spread=3.0)
    assert (balanced.logits(test_x).argmax(1) == 2).sum() > (plain.logits(test_x).argmax(1) == 2).sum()


def test_saved_model_is_plain_arrays_and_json(tmp_path):
    x, y = blobs(10, 8, seed=4)
    model = FunctionalsLinear.fit(x, y, LABELS, "eGeMAPSv02", l2=1.0)
    model.save(tmp_path)
    with np.load(tmp_path / "model.npz", allow_pickle=False) as data:
        assert sorted(data.files) == ["bias", "mean", "scale", "weights"]
    assert json.loads((tmp_path / "model.json").read_text())["labels"] == LABELS
    np.testing.assert_array_equal(FunctionalsLinear.load(tmp_path).logits(x), model.logits(x))


def functionals_corpus(root, speakers: int = 5, per_class: int = 4, with_sets=True, silent=()) -> FeatureCorpus:
    """A feature corpus whose clips carry eGeMAPS-sized functionals that tell the classes apart."""
    with CorpusWriter(root, labels=LABELS) as writer:
        for s in range(speakers):
            x, y = blobs(per_class, 88, seed=10 + s)
            for i, (row, label) in enumerate(zip(x, y, strict=True)):
                clip_id = f"s{s}_{i}"
                functionals = {"eGeMAPSv02": row} if with_sets and clip_id not in silent else {}
                clip = ClipFeatures(
                    clip_id,
                    np.zeros((3, 130), np.float32),
                    np.ones(3, bool),
                    np.zeros((0, 16), np.float32),
                    np.zeros(0, bool),
                    label=LABELS[label],
                    speaker=f"s{s}",
                    functionals=functionals,
                )
                writer.add(clip)
    return FeatureCorpus.open(root)


def test_a_run_uses_the_networks_split_and_report(tmp_path):
    corpus = functionals_corpus(tmp_path / "corpus", silent={"s0_0"})
    cfg = TrainConfig(model="functionals-linear", split_seed=3)
    classical = ClassicalConfig(feature_set="eGeMAPSv02", l2_grid=(0.01, 100.0))
    run = ClassicalTrainer(corpus, cfg, classical, tmp_path / "r")
    metrics = run.fit()
    assert run.parts == speaker_split(corpus.entries, 3)  # the split a network with this seed gets
    assert [h["l2"] for h in metrics.history] == [0.01, 100.0] and run.model is not None
    chosen = min(metrics.history, key=lambda h: h["dev_loss"])["l2"]
    assert run.model.l2 == chosen
    assert metrics.test.macro_f1 > 0.8 and metrics.condition("audio_only").macro_f1 == metrics.test.macro_f1
    # without its audio the model has no input: every clip gets the training prior's class
    assert np.count_nonzero(np.array(metrics.condition("video_only").confusion).sum(0)) == 1
    for name in ("config.json", "splits.csv", "metrics.json", "model.npz", "model.json", "confusion_matrix.png"):
        assert (tmp_path / "r" / name).is_file()
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["model"] == "functionals-linear" and {"dev", "test", "test_video_only"} <= set(saved)


def test_corpora_without_functionals_say_how_to_get_them(tmp_path):
    corpus = functionals_corpus(tmp_path / "old", with_sets=False)
    assert corpus.functional_sets == {}
    with pytest.raises(CorpusError, match="--functionals eGeMAPSv02"):
        corpus.load_functionals(corpus.entries, "eGeMAPSv02")
    result = CliRunner().invoke(
        app, ["--corpus", str(tmp_path / "old"), "--model", "functionals-linear", "--functionals", "eGeMAPSv02"]
    )
    assert result.exit_code == 1 and "holds no eGeMAPSv02 functionals" in " ".join(result.output.split())
    assert "macro-F1" not in result.output  # refused before any work


def test_fit_command_trains_the_baseline(tmp_path):
    functionals_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    args = ["fit", "--corpus", str(tmp_path / "corpus"), "--out", str(out), "--model", "functionals-linear"]
    result = CliRunner().invoke(app, [*args, "--functionals", "eGeMAPSv02", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "functionals-linear" in result.output and "macro-F1" in result.output
    assert json.loads((out / "metrics.json").read_text())["test"]["macro_f1"] > 0.8
    bad = CliRunner().invoke(app, [*args, "--functionals", "MFCC"])
    assert bad.exit_code != 0 and "unknown functional sets" in bad.output


def test_protocol_plans_the_baseline_in_standard_training_only():
    cfg = ProtocolConfig(runs=2, models=("auxformer", "functionals-linear"))
    jobs = plan(cfg)
    assert [(j.model, j.training) for j in jobs if j.run == 0] == [
        ("auxformer", "standard"),
        ("auxformer", "optimized"),
        ("functionals-linear", "standard"),
    ]
    with pytest.raises(ValueError, match="unknown models"):
        ProtocolConfig(models=("linear",))


def test_leave_one_speaker_out_folds(tmp_path):
    corpus = functionals_corpus(tmp_path / "corpus", speakers=4, per_class=1)
    folds = leave_one_speaker_out(corpus.entries)
    assert [(t, d) for t, d, _ in folds] == [("s0", "s1"), ("s1", "s2"), ("s2", "s3"), ("s3", "s0")]
    for test, dev, entries in folds:
        parts = speaker_split(entries, seed=0)
        assert {e.speaker for e in parts["test"]} == {test} and {e.speaker for e in parts["dev"]} == {dev}
        assert len(parts["train"]) == 2 * len(LABELS)
