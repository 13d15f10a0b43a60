"""The small-corpus training recipe: augmentation masks, the schedule, the loss options, the paper switch,
and one short training with the recipe."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from rich.console import Console

from auxformer.train.augment import MaskSpec, augment, feature_mask, time_mask
from auxformer.train.config import ModelConfig, TrainConfig
from auxformer.train.loss import balanced_class_weights
from auxformer.train.schedule import Schedule, build_optimizer, warmup_cosine
from auxformer.train.trainer import Trainer

from .conftest import TINY


def _padded(lengths, t=40, d=6):
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    values = torch.randn(len(lengths), t, d) * mask[..., None]
    return values, mask


def test_time_mask_only_removes_valid_frames_and_keeps_one():
    _, mask = _padded([40, 25, 3, 0, 1])
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        out = time_mask(mask, count=3, fraction=0.9, generator=g)
        assert out.shape == mask.shape and out.dtype == torch.bool
        assert not (out & ~mask).any()  # padding never becomes a frame
        assert torch.equal(out.any(1), mask.any(1))  # a clip keeps a frame; a missing one stays missing
    # it does mask something on the long clips
    masked = time_mask(mask, 2, 0.5, torch.Generator().manual_seed(1))
    assert masked[:2].sum() < mask[:2].sum()


def test_time_mask_runs_stay_within_the_fraction():
    mask = torch.ones(200, 100, dtype=torch.bool)
    out = time_mask(mask, 1, 0.1, torch.Generator().manual_seed(0))
    dropped = (~out).sum(1)
    assert dropped.max() <= 10 and dropped.float().mean() > 2


def test_feature_mask_fills_bands_on_valid_frames_only():
    values, mask = _padded([40, 10])
    fill = torch.full((6,), 7.0)
    out = feature_mask(values, mask, count=2, width=3, fill=fill, generator=torch.Generator().manual_seed(0))
    assert out.shape == values.shape
    assert torch.equal(out[~mask], values[~mask])  # padding is untouched: it must not hold the fill
    changed = out != values
    assert changed.any() and (out[changed] == 7.0).all()
    # a band covers the same dimensions on every valid frame of a clip
    for b, n in enumerate((40, 10)):
        assert (changed[b, :n] == changed[b, :1]).all()


def test_augment_is_deterministic_with_the_generator_and_inactive_by_default():
    values, mask = _padded([40, 30])
    spec = MaskSpec(2, 0.2, 2, 2)
    fill = torch.zeros(6)
    a = augment(values, mask, spec, fill, torch.Generator().manual_seed(3))
    b = augment(values, mask, spec, fill, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    same = augment(values, mask, MaskSpec(), fill, torch.Generator())
    assert same[0] is values and same[1] is mask


def test_warmup_cosine_rises_then_decays():
    f = warmup_cosine(100, 0.1, min_factor=0.0)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5, abs=0.01)
    assert f(100) == pytest.approx(0.0, abs=1e-9)
    values = [f(s) for s in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_schedules_step_at_their_moments_and_resume():
    p = [torch.nn.Parameter(torch.zeros(1))]
    opt = build_optimizer(p, TrainConfig.small_corpus(lr=1.0))
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] > 0
    cosine = Schedule(opt, "cosine", total_steps=10, warmup_fraction=0.0)
    cosine.after_epoch(1.0)  # a per-step schedule ignores epochs
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)
    for _ in range(5):
        opt.step()
        cosine.after_step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))
    state = cosine.state_dict()
    opt2 = build_optimizer([torch.nn.Parameter(torch.zeros(1))], TrainConfig.small_corpus(lr=1.0))
    again = Schedule(opt2, "cosine", total_steps=10)
    again.load_state_dict(state)  # with the optimiser's state, as a resume loads both
    opt2.load_state_dict(opt.state_dict())
    for o, s in ((opt, cosine), (opt2, again)):
        o.step()
        s.after_step()
    lr = opt.param_groups[0]["lr"]
    assert lr < 0.5 and opt2.param_groups[0]["lr"] == pytest.approx(lr)

    paper = build_optimizer(p, TrainConfig(lr=1.0))
    assert type(paper) is torch.optim.Adam and paper.param_groups[0]["weight_decay"] == 0
    plateau = Schedule(paper, "plateau", total_steps=10, plateau_patience=0)
    plateau.after_step()
    plateau.after_epoch(1.0)
    plateau.after_epoch(2.0)
    assert paper.param_groups[0]["lr"] == pytest.approx(0.1)


def test_balanced_class_weights():
    w = balanced_class_weights([0, 0, 0, 1], 3)
    assert torch.allclose(w, torch.tensor([4 / 9, 4 / 3, 4 / 3]))  # an absent class gets a finite weight


def test_one_switch_between_the_paper_and_the_small_corpus_recipe():
    paper, recipe = TrainConfig(), TrainConfig.small_corpus()
    assert (paper.optimizer, paper.weight_decay, paper.schedule) == ("adam", 0.0, "plateau")
    assert paper.label_smoothing == 0 and not paper.class_balance and paper.time_masks == paper.feature_masks == 0
    assert (paper.lr, paper.batch_size, paper.epochs, paper.grad_clip) == (7.25e-4, 32, 20, 0.8)
    assert (recipe.optimizer, recipe.schedule, recipe.class_balance) == ("adamw", "cosine", True)
    assert TrainConfig.recipe("paper", epochs=3) == TrainConfig(epochs=3)
    assert TrainConfig.recipe("small-corpus") == recipe != paper
    assert ModelConfig().pooling == "last" and ModelConfig.small_corpus().pooling == "mean"
    assert ModelConfig.recipe("small-corpus", num_layers=2) == ModelConfig(pooling="mean", num_layers=2)
    with pytest.raises(ValueError, match="recipe must be one of"):
        TrainConfig.recipe("fancy")


def _fit(corpus, out, cfg: TrainConfig, model_cfg: ModelConfig):
    trainer = Trainer(corpus, cfg, model_cfg, out, console=Console(quiet=True), progress=False)
    return trainer, trainer.fit()


def test_short_training_with_the_recipe(small_demo, tmp_path, monkeypatch):
    from auxformer.train import augment as augment_module

    calls = []
    real = augment_module.augment

    def spy(values, mask, *args):
        out = real(values, mask, *args)
        calls.append(bool((out[1] & ~mask).any()))
        return out

    monkeypatch.setattr(augment_module, "augment", spy)
    cfg = TrainConfig.small_corpus(epochs=4, batch_size=16, model="audio_only", lr=2e-3)
    _, first = _fit(small_demo, tmp_path / "a", cfg, ModelConfig(**TINY))
    losses = [h["train_loss"] for h in first.history]
    assert losses[-1] < losses[0]
    assert calls and not any(calls)  # augmentation ran on every batch and never made a frame valid
    # the cosine schedule warmed up and decayed within the run
    lrs = [h["lr"] for h in first.history]
    assert max(lrs) > lrs[-1]
    _, second = _fit(small_demo, tmp_path / "b", cfg, ModelConfig(**TINY))
    assert [h["train_loss"] for h in second.history] == losses  # deterministic with the seed


def test_early_stopping_restores_the_best(small_demo, tmp_path):
    # a zero rate leaves the weights as they are: the dev loss of epoch 1 is never beaten
    cfg = TrainConfig(epochs=6, batch_size=16, model="audio_only", lr=0.0, early_stop_patience=2)
    _, metrics = _fit(small_demo, tmp_path, cfg, ModelConfig(**TINY))
    assert (metrics.best_epoch, metrics.epochs, len(metrics.history)) == (1, 3, 3)
