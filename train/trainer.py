"""The training loop: one run = split -> normalise -> train with best-dev-loss selection -> evaluate.

A run folder holds `config.json`, `splits.csv`, `checkpoint.pt` (best dev loss), `last.pt` (resume
state), `metrics.json`, `confusion_matrix.png`, `training_curves.png`. Interrupt it at any point and
`resume=True` continues from the last finished epoch with the same result as an uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from auxformer.calibration.temperature import calibrate
from auxformer.common import atomic
from auxformer.common.metrics import classification_report
from auxformer.train.corpus import FeatureCorpus

from . import checkpoint, distributed, modality_dropout, plots
from .config import ModelConfig, TrainConfig
from .data import Batch, ClipDataset, normalization_stats
from .model import AuxFormer, build_model, count_parameters
from .splits import PARTITIONS, speaker_split

# test condition -> modality removed from every test clip
CONDITIONS: dict[str, str | None] = {"full": None, "audio_only": "video", "video_only": "audio"}


@dataclass
class TrainState:
    epoch: int = 0  # epochs finished
    best_dev_loss: float = math.inf
    best_epoch: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def head_weight(weights: dict[str, float], head: str) -> float:
    # a unimodal network's main head takes the fusion head's weight
    return weights.get(head, weights.get("av", 1.0)) if head == "main" else weights.get(head, 0.0)


def multitask_loss(
    model: AuxFormer,
    heads: dict[str, torch.Tensor],
    batch: Batch,
    weights: dict[str, float],
    denominator: float | None = None,
) -> torch.Tensor:
    """Weighted cross-entropy of every head, summed over clips and divided by `denominator` (default:
    the batch size). A head whose modalities are all missing for a clip (dropped or absent) gets no
    loss for that clip, since it has nothing to learn from."""
    present = model.head_present({"audio": batch.audio_mask, "video": batch.video_mask})
    total = torch.zeros((), device=batch.labels.device)
    for name, logits in heads.items():
        ce = F.cross_entropy(logits, batch.labels, reduction="none")
        total = total + head_weight(weights, name) * (ce * present[name]).sum()
    return total / (denominator or len(batch.labels))


@torch.no_grad()
def evaluate(
    model: AuxFormer,
    dataset: ClipDataset,
    labels: list[str],
    weights: dict[str, float],
    batch_size: int,
    missing: str | None = None,
) -> dict[str, Any]:
    """Loss and metrics of the fused prediction and of each head, with `missing` removed."""
    model.eval()
    device = next(model.parameters()).device
    fused, heads, targets, loss_sum = [], {}, [], 0.0
    for batch in dataset.loader(batch_size):
        batch = batch.without(missing).to(device)
        out = model(*batch.inputs())
        loss_sum += float(multitask_loss(model, out.heads, batch, weights)) * len(batch.labels)
        fused.append(out.logits.cpu())
        for name, logits in out.heads.items():
            heads.setdefault(name, []).append(logits.cpu())
        targets.append(batch.labels.cpu())
    y = torch.cat(targets).numpy()
    logits = torch.cat(fused)
    report = classification_report(y, logits.argmax(1).numpy(), labels)
    report["loss"] = loss_sum / len(y)
    report["heads"] = {
        name: {
            k: v
            for k, v in classification_report(y, torch.cat(h).argmax(1).numpy(), labels).items()
            if k in ("macro_f1", "micro_f1")
        }
        for name, h in heads.items()
    }
    report["logits"] = logits.numpy()
    report["head_logits"] = {name: torch.cat(h).numpy() for name, h in heads.items()}
    report["labels"] = y
    return report


class Trainer:
    def __init__(
        self,
        corpus: FeatureCorpus,
        cfg: TrainConfig,
        model_cfg: ModelConfig,
        out: str | Path,
        console: Console | None = None,
        progress: bool = True,
        device: str = "auto",
    ):
        self.corpus, self.cfg, self.out = corpus, cfg, Path(out)
        self.dist = distributed.setup(device)
        # one voice on the terminal: other processes of a torchrun job stay quiet
        self.console = console if self.dist.is_main and console else Console(quiet=not self.dist.is_main)
        self.show_progress = progress and self.dist.is_main
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.labels = corpus.labels
        self.parts = speaker_split(corpus.entries, cfg.split_seed, cfg.split_fractions)
        self.data = {p: ClipDataset(corpus, self.parts[p], self.labels) for p in PARTITIONS if self.parts[p]}
        if "test" not in self.data:
            raise ValueError("the split leaves no test clips")
        self.model_cfg = replace(model_cfg, num_classes=len(self.labels), video_dim=corpus.video_dim)

        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, self.model_cfg)
        self.model.set_normalization(
            {
                m: (torch.from_numpy(mu), torch.from_numpy(sd))
                for m, (mu, sd) in normalization_stats(self.data["train"]).items()
            }
        )
        self.model.to(self.dist.device)
        self.step_model: torch.nn.Module = self.model
        if self.dist.distributed:
            ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
            self.step_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
        self.shuffle_rng = torch.Generator().manual_seed(cfg.seed + 1)
        self.dropout_rng = torch.Generator().manual_seed(cfg.seed + 2)
        self.state = TrainState()
        self.info = self.describe()

    # -- persistence -----------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "model_name": self.cfg.model,
            "model_config": self.model_cfg.to_dict(),
            "train_config": self.cfg.to_dict(),
            "labels": self.labels,
            "corpus": str(self.corpus.root.resolve()),  # export finds it from any working folder
            "feature_spec": {k: v for k, v in self.corpus.metadata.items() if k != "labels"},
            "length_stats": length_stats(self.corpus, self.parts["train"]),
            "parameters": count_parameters(self.model),
            "partition_sizes": {p: len(self.parts[p]) for p in PARTITIONS},
        }

    def rng_states(self) -> list[dict[str, Any]]:
        """Every process's random state (called by all of them): in-model dropout draws differ per
        process, so an exact resume needs each one's, the GPU generator's too."""
        state = {
            "torch": torch.get_rng_state(),
            "shuffle": self.shuffle_rng.get_state(),
            "dropout": self.dropout_rng.get_state(),
        }
        if self.dist.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.dist.device)
        if not self.dist.distributed:
            return [state]
        gathered: list[Any] = [None] * self.dist.world_size
        torch.distributed.all_gather_object(gathered, state)
        return gathered

    def save_last(self, rngs: list[dict[str, Any]]) -> None:
        checkpoint.save(
            self.out / checkpoint.LAST,
            {
                **self.info,
                "state_dict": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rngs,  # one per process
                "state": self.state.__dict__,
            },
        )

    def save_best(self, dev_loss: float) -> None:
        checkpoint.save(
            self.out / checkpoint.BEST,
            {
                **self.info,
                "state_dict": self.model.state_dict(),
                "epoch": self.state.epoch,
                "dev_loss": dev_loss,
            },
        )

    def restore(self) -> bool:
        path = self.out / checkpoint.LAST
        if not path.is_file():
            return False
        ckpt = checkpoint.read(path)
        # only the epoch budget may change between a run and its resumption
        same_training = {**ckpt["train_config"], "epochs": self.cfg.epochs} == self.cfg.to_dict()
        if not same_training or ckpt["model_config"] != self.model_cfg.to_dict():
            raise checkpoint.CheckpointError(
                f"{path} was written with a different configuration; use a new --out folder"
            )
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        rngs = ckpt["rng"]
        if len(rngs) != self.dist.world_size:
            self.console.print(
                f"[yellow]resuming with {self.dist.world_size} processes, not {len(rngs)}: "
                "in-model dropout draws will differ from an uninterrupted run[/]"
            )
        rng = rngs[self.dist.rank if len(rngs) == self.dist.world_size else 0]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.dist.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.dist.device)
        self.shuffle_rng.set_state(rng["shuffle"])
        self.dropout_rng.set_state(rng["dropout"])
        self.state = TrainState(**ckpt["state"])
        return True

    def write_run_files(self) -> None:
        atomic.write_json(self.out / "config.json", self.info)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["clip_id", "speaker", "label", "partition"])
        for p in PARTITIONS:
            writer.writerows([e.clip_id, e.speaker, e.label, p] for e in self.parts[p])
        atomic.write_text(self.out / "splits.csv", buf.getvalue())

    # -- training --------------------------------------------------------------------------------

    def train_epoch(self, progress: Progress | None, task: Any) -> float:
        """One pass over shuffled global batches; each process trains on its share of every batch
        (all of it when there is one process), so the update does not depend on the process count."""
        self.model.train()
        cfg, data, ctx = self.cfg, self.data["train"], self.dist
        order = torch.randperm(len(data), generator=self.shuffle_rng)
        total, n = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            global_ids = order[start : start + cfg.batch_size]
            mine = ctx.share(len(global_ids))
            # a last batch smaller than the process count leaves some processes no clip; they still
            # step (DDP's all-reduce needs every process) on a stand-in clip whose loss counts zero
            idle = mine.start == mine.stop
            if idle:
                mine = slice(0, 1)
            batch = data.batch(global_ids[mine].tolist())
            if cfg.training == "optimized":
                draws = modality_dropout.draw(len(global_ids), cfg.dropout_per, self.dropout_rng)[mine]
                batch = modality_dropout.apply(batch, draws, cfg.drop_audio, cfg.drop_video)
            batch = batch.to(ctx.device)
            out = self.step_model(*batch.inputs())
            # DDP averages gradients over processes: scale so the sum matches one process's batch mean
            loss = multitask_loss(
                self.model, out.heads, batch, cfg.loss_weights, denominator=len(global_ids) / ctx.world_size
            ) * (0.0 if idle else 1.0)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            total += loss.item() * len(global_ids) / ctx.world_size
            n += len(global_ids)
            if progress is not None:
                progress.update(task, advance=1, loss=total / n)
        if ctx.distributed:  # each process summed its own shares
            summed = torch.tensor([total], device=ctx.device)
            torch.distributed.all_reduce(summed)
            total = float(summed.item())
        return total / max(n, 1)

    def fit(self, resume: bool = False) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        if resume and self.restore():
            self.console.print(f"[bold]resuming[/] {self.out} after epoch {self.state.epoch}")
        if self.dist.is_main:
            self.write_run_files()
        steps = math.ceil(len(self.data["train"]) / self.cfg.batch_size)
        dev = self.data.get("dev", self.data["train"])
        with self._progress() as progress:
            for epoch in range(self.state.epoch + 1, self.cfg.epochs + 1):
                task = (
                    progress.add_task(f"epoch {epoch}/{self.cfg.epochs}", total=steps, loss=float("nan"))
                    if progress
                    else None
                )
                t0 = time.perf_counter()
                train_loss = self.train_epoch(progress, task)
                report = evaluate(self.model, dev, self.labels, self.cfg.loss_weights, self.cfg.batch_size)
                self.scheduler.step(report["loss"])
                self.state.epoch = epoch
                self.state.history.append(
                    {
                        "epoch": epoch,
                        "train_loss": train_loss,
                        "dev_loss": report["loss"],
                        "dev_macro_f1": report["macro_f1"],
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "seconds": time.perf_counter() - t0,
                    }
                )
                improved = report["loss"] < self.state.best_dev_loss
                if improved:
                    self.state.best_dev_loss, self.state.best_epoch = report["loss"], epoch
                rngs = self.rng_states()
                if self.dist.is_main:  # every process holds the same weights; one writes them
                    if improved:
                        self.save_best(report["loss"])
                    self.save_last(rngs)
                self.dist.barrier()
                if progress:
                    progress.remove_task(task)
                self.console.print(
                    f"epoch {epoch:>3}  train loss {train_loss:.4f}  dev loss {report['loss']:.4f}  "
                    f"dev macro-F1 {report['macro_f1']:.3f}  lr {self.optimizer.param_groups[0]['lr']:.2e}"
                    f"  {time.perf_counter() - t0:5.1f}s{'  *best' if improved else ''}"
                )
        metrics = self.finish() if self.dist.is_main else {}
        distributed.teardown(self.dist)
        return metrics

    def _progress(self) -> Progress:
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeRemainingColumn(),
        ]
        return Progress(*columns, console=self.console, transient=True, disable=not self.show_progress)

    def finish(self) -> dict[str, Any]:
        """Evaluate the best checkpoint on dev and on test under each condition; write metrics and plots."""
        model, _ = checkpoint.load_model(self.out)
        model.to(self.dist.device)
        bs, w = self.cfg.batch_size, self.cfg.loss_weights
        metrics: dict[str, Any] = {
            "model": self.cfg.model,
            "training": self.cfg.training,
            "labels": self.labels,
            "best_epoch": self.state.best_epoch,
            "epochs": self.state.epoch,
            "parameters": count_parameters(model),
            "history": self.state.history,
        }
        reports = {}
        if "dev" in self.data:
            reports["dev"] = evaluate(model, self.data["dev"], self.labels, w, bs)
        for condition, missing in CONDITIONS.items():
            key = "test" if missing is None else f"test_{condition}"
            reports[key] = evaluate(model, self.data["test"], self.labels, w, bs, missing)
        metrics.update({key: _public(r) for key, r in reports.items()})
        if "dev" in reports:
            metrics["calibration"] = self.calibrate(reports["dev"], reports["test"])
        atomic.write_json(self.out / "metrics.json", metrics)
        plots.save_figure(
            plots.confusion_matrix_figure(
                metrics["test"]["confusion"],
                self.labels,
                f"{self.cfg.model} test (macro-F1 {metrics['test']['macro_f1']:.3f})",
            ),
            self.out / "confusion_matrix.png",
        )
        plots.save_figure(
            plots.training_curves_figure(self.state.history, self.state.best_epoch), self.out / "training_curves.png"
        )
        return metrics

    def calibrate(self, dev: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
        """Temperature scaling fitted on dev; stored in the checkpoint (export puts it into the
        manifest, the runtime applies it) with ECE / NLL before and after, and a reliability diagram."""
        report = calibrate(
            dev["logits"], dev["labels"], dev["head_logits"], evaluation={"test": (test["logits"], test["labels"])}
        )
        ckpt = checkpoint.read(self.out / checkpoint.BEST)
        checkpoint.save(self.out / checkpoint.BEST, {**ckpt, "calibration": report.to_dict()})
        plots.save_figure(
            plots.reliability_figure(
                {"dev (T fitted here)": (dev["logits"], dev["labels"]), "test": (test["logits"], test["labels"])},
                report.temperature,
            ),
            self.out / "reliability.png",
        )
        return report.to_dict()


PRIVATE = ("logits", "head_logits", "labels")  # arrays evaluate() returns for calibration, not for metrics.json


def _public(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in PRIVATE}


def length_stats(corpus: FeatureCorpus, entries: list[Any]) -> dict[str, dict[str, int]]:
    """Frame-count percentiles of the training clips: the basis of export shape profiles."""
    out = {}
    for m in ("audio", "video"):
        values = [int(e.extra[f"{m}_frames"]) for e in entries if f"{m}_frames" in e.extra]
        if not values:
            values = [len(getattr(corpus.load(e), f"{m}_mask")) for e in entries]
        arr = np.asarray(values)
        out[m] = {
            "min": int(arr.min()),
            "p50": int(np.percentile(arr, 50)),
            "p95": int(np.percentile(arr, 95)),
            "max": int(arr.max()),
        }
    return out


def load_metrics(run: str | Path) -> dict[str, Any]:
    return json.loads((Path(run) / "metrics.json").read_text())
