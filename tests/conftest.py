"""Shared fixtures. Media helpers live in `media_factory.py` (import it: `from media_factory import make_clip`)."""

from __future__ import annotations

from pathlib import Path

import pytest

# the real CREMA-D metadata (no media) lives in the shared folder beside the repository
CREMAD_META = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "crema-d"


@pytest.fixture(scope="session")
def cremad_meta() -> Path:
    """Folder with CREMA-D's summaryTable.csv and tabulatedVotes.csv (skips when absent)."""
    if not (CREMAD_META / "tabulatedVotes.csv").is_file():
        pytest.skip(f"CREMA-D metadata not found at {CREMAD_META}")
    return CREMAD_META
