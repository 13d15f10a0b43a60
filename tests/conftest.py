"""Shared fixtures: tiny model configs and small generated corpora, so the suite stays fast."""

from __future__ import annotations

import pytest

from auxformer.train.demo_corpus import DemoSpec

pytest.importorskip("torch")


TINY = dict(d_model=20, num_heads=2, num_layers=2)


@pytest.fixture
def tiny_config():
    from auxformer.train.config import ModelConfig

    return ModelConfig(num_classes=6, video_dim=16, **TINY)


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory):
    """A 6-class demo corpus small enough to train on in seconds."""
    from auxformer.train.demo_corpus import generate

    spec = DemoSpec(speakers=8, clips_per_class=3, video_dim=16, min_seconds=0.4, max_seconds=0.6)
    return generate(tmp_path_factory.mktemp("demo") / "corpus", spec)
