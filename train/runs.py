"""One training run of any model, by name: a network (`Trainer`) or a classical model
(`ClassicalTrainer`). Both take the same corpus, `TrainConfig` (model, seeds, split) and run folder,
and their `fit(resume)` returns the same `RunMetrics`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from auxformer.train.corpus import FeatureCorpus

from .config import CLASSICAL_NAMES, ClassicalConfig, ModelConfig, TrainConfig

if TYPE_CHECKING:
    from .classical import ClassicalTrainer
    from .trainer import Trainer


def build_run(
    corpus: FeatureCorpus,
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    out: str | Path,
    console: Console | None = None,
    progress: bool = True,
    device: str = "auto",
    classical_cfg: ClassicalConfig | None = None,
) -> Trainer | ClassicalTrainer:
    if cfg.model in CLASSICAL_NAMES:
        from .classical import ClassicalTrainer

        return ClassicalTrainer(corpus, cfg, classical_cfg or ClassicalConfig(), out, console)
    from .trainer import Trainer

    return Trainer(corpus, cfg, model_cfg, out, console=console, progress=progress, device=device)
