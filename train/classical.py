"""A classical-baseline run: the same speaker split as a network run, the functionals model fitted on
train with its penalty chosen on dev, evaluated under the same test conditions, in the same report.

A run folder holds `config.json`, `splits.csv`, `model.npz` + `model.json` (the model, no pickle),
`metrics.json` (the networks' `RunMetrics`; its `history` is the penalty search) and
`confusion_matrix.png`. The model reads audio only: with the audio removed (the video-only test
condition) a clip has no input and gets the training prior's prediction, as would any clip whose audio
is missing.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich.console import Console

from auxformer.common import atomic
from auxformer.common.metrics import classification_report, softmax
from auxformer.train.corpus import CorpusEntry, FeatureCorpus

from . import plots
from .config import ClassicalConfig, TrainConfig
from .functionals_model import FunctionalsLinear
from .run_metrics import CONDITIONS, Evaluation, Outputs, RunMetrics, condition_key
from .splits import PARTITIONS, speaker_split, write_splits


class ClassicalTrainer:
    """`fit()` -> RunMetrics, like `Trainer`, for the models of `CLASSICAL_NAMES`."""

    def __init__(
        self,
        corpus: FeatureCorpus,
        cfg: TrainConfig,
        classical_cfg: ClassicalConfig,
        out: str | Path,
        console: Console | None = None,
    ):
        self.corpus, self.cfg, self.classical_cfg, self.out = corpus, cfg, classical_cfg, Path(out)
        self.console = console or Console(quiet=True)
        self.labels = corpus.labels
        corpus.functional_dim(classical_cfg.feature_set)  # a corpus without them is refused before any work
        self.parts = speaker_split(corpus.entries, cfg.split_seed, cfg.split_fractions)
        if not self.parts["test"]:
            raise ValueError("the split leaves no test clips")
        self.partition_sizes = {p: len(self.parts[p]) for p in PARTITIONS}
        self.model: FunctionalsLinear | None = None

    def data(self, entries: list[CorpusEntry]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Functionals, presence and class indices of `entries`."""
        x, present = self.corpus.load_functionals(entries, self.classical_cfg.feature_set)
        index = {label: i for i, label in enumerate(self.labels)}
        return x, present, np.array([index[e.label] for e in entries], dtype=np.int64)

    def fit(self, resume: bool = False) -> RunMetrics:
        """Fit (quick enough that `resume` simply fits again), evaluate, write the run folder."""
        del resume
        self.out.mkdir(parents=True, exist_ok=True)
        cc = self.classical_cfg
        x, present, y = self.data(self.parts["train"])
        if not present.any():
            raise ValueError("no training clip has functionals (no audio)")
        x, y = x[present], y[present]
        prior = np.log(np.bincount(y, minlength=len(self.labels)) + 1.0)  # add-one: no class is impossible
        dev_entries = self.parts["dev"] or self.parts["train"]
        dev = self.data(dev_entries)
        history, best, best_loss = [], None, np.inf
        for l2 in cc.l2_grid:
            t0 = time.perf_counter()
            model = FunctionalsLinear.fit(x, y, self.labels, cc.feature_set, l2, cc.class_weight, cc.max_iter)
            report = self.evaluate(model, dev, prior)
            seconds = time.perf_counter() - t0
            history.append({"l2": l2, "dev_loss": report.loss, "dev_macro_f1": report.macro_f1, "seconds": seconds})
            self.console.print(f"l2 {l2:g}  dev loss {report.loss:.4f}  dev macro-F1 {report.macro_f1:.3f}")
            if report.loss < best_loss:
                best, best_loss = model, report.loss
        assert best is not None  # the grid is never empty
        self.model = best
        best.save(self.out)
        self.write_run_files(best)
        evaluations = {"dev": self.evaluate(best, dev, prior)} if self.parts["dev"] else {}
        test = self.data(self.parts["test"])
        for condition, missing in CONDITIONS.items():
            evaluations[condition_key(condition)] = self.evaluate(best, test, prior, missing)
        metrics = RunMetrics(
            model=self.cfg.model,
            training=self.cfg.training,
            labels=self.labels,
            best_epoch=None,
            epochs=0,
            parameters=best.parameters,
            history=history,
            evaluations=evaluations,
        )
        metrics.save(self.out)
        title = f"{self.cfg.model} test (macro-F1 {metrics.test.macro_f1:.3f})"
        plots.save_figure(
            plots.confusion_matrix_figure(metrics.test.confusion, self.labels, title), self.out / "confusion_matrix.png"
        )
        return metrics

    def evaluate(
        self,
        model: FunctionalsLinear,
        data: tuple[np.ndarray, np.ndarray, np.ndarray],
        prior: np.ndarray,
        missing: str | None = None,
    ) -> Evaluation:
        x, present, y = data
        if missing == "audio":
            present = np.zeros_like(present)
        logits = np.tile(prior.astype(np.float32), (len(y), 1))
        if present.any():
            logits[present] = model.logits(x[present])
        p = softmax(logits.astype(np.float64), axis=1)
        loss = float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)).mean()) if len(y) else 0.0
        report = classification_report(y, logits.argmax(1), self.labels)
        return Evaluation(**report, loss=loss, outputs=Outputs(logits=logits, head_logits={}, targets=y))

    def write_run_files(self, model: FunctionalsLinear) -> None:
        atomic.write_json(
            self.out / "config.json",
            {
                "model_name": self.cfg.model,
                "classical_config": self.classical_cfg.to_dict(),
                "train_config": self.cfg.to_dict(),
                "labels": self.labels,
                "corpus": str(self.corpus.root.resolve()),
                "feature_spec": {k: v for k, v in self.corpus.metadata.items() if k != "labels"},
                "parameters": model.parameters,
                "l2": model.l2,
                "partition_sizes": self.partition_sizes,
            },
        )
        write_splits(self.out / "splits.csv", self.parts)
