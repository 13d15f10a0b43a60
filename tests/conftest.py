"""Shared fixtures: tiny model configs, small generated corpora, the real CREMA-D metadata.
Media helpers live in `media_factory.py` (`from .media_factory import make_clip`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from auxformer.train.demo_corpus import DemoSpec

TINY = dict(d_model=20, num_heads=2, num_layers=2)
# the real CREMA-D metadata (no media) lives in the shared folder beside the repository
CREMAD_META = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "crema-d"


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


@pytest.fixture(scope="session")
def cremad_meta() -> Path:
    """Folder with CREMA-D's summaryTable.csv and tabulatedVotes.csv (skips when absent)."""
    if not (CREMAD_META / "tabulatedVotes.csv").is_file():
        pytest.skip(f"CREMA-D metadata not found at {CREMAD_META}")
    return CREMAD_META
