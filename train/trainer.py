"""The training loop: one run = split -> normalise -> train with best-dev-loss selection -> evaluate.

A run folder holds `config.json`, `splits.csv`, `checkpoint.pt` (best dev loss), `last.pt` (resume
state), `metrics.json`, `confusion_matrix.png`, `training_curves.png`. Interrupt it at any point and
`resume=True` continues from the last finished epoch with the same result as an uninterrupted run.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from auxformer.calibration.temperature import CalibrationReport, calibrate
from auxformer.common import atomic
from auxformer.train.corpus import FeatureCorpus

from . import augment, checkpoint, distributed, modality_dropout, plots
from .batching import epoch_batches
from .checkpoint import Checkpoint, ResumeState, RunInfo, TrainState
from .config import ModelConfig, TrainConfig
from .data import ClipDataset, normalization_stats
from .evaluation import evaluate
from .loss import balanced_class_weights, multitask_loss
from .model import build_model, count_parameters, use_attention
from .precision import Precision
from .prefetch import prefetched
from .rng_state import RngState
from .run_metrics import CONDITIONS, Evaluation, RunMetrics, condition_key
from .schedule import build_optimizer, build_schedule
from .splits import PARTITIONS, speaker_split, write_splits


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
        self.model = use_attention(build_model(cfg.model, self.model_cfg), cfg.attention)
        self.precision = Precision(cfg.precision, self.dist.device)
        self.train_lengths = self.data["train"].lengths()
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
        self.optimizer = build_optimizer(self.model.parameters(), cfg)
        self.scheduler = build_schedule(self.optimizer, cfg, math.ceil(len(self.data["train"]) / cfg.batch_size))
        self.class_weights = (
            balanced_class_weights([self.labels.index(e.label) for e in self.parts["train"]], len(self.labels)).to(
                self.dist.device
            )
            if cfg.class_balance
            else None
        )
        self.masks = augment.MaskSpec(cfg.time_masks, cfg.time_mask_fraction, cfg.feature_masks, cfg.feature_mask_width)
        self.shuffle_rng = torch.Generator().manual_seed(cfg.seed + 1)
        # modality dropout and augmentation masks (a resume restores it)
        self.dropout_rng = torch.Generator().manual_seed(cfg.seed + 2)
        self.state = TrainState()
        self.info = self.describe()

    # -- persistence -----------------------------------------------------------------------------

    def describe(self) -> RunInfo:
        return RunInfo(
            model_name=self.cfg.model,
            model_config=self.model_cfg,
            train_config=self.cfg,
            labels=self.labels,
            corpus=str(self.corpus.root.resolve()),  # export finds it from any working folder
            feature_spec={k: v for k, v in self.corpus.metadata.items() if k != "labels"},
            length_stats=length_stats(self.corpus, self.parts["train"]),
            parameters=count_parameters(self.model),
            partition_sizes={p: len(self.parts[p]) for p in PARTITIONS},
        )

    def rng_states(self) -> list[RngState]:
        """Every process's random state (called by all of them): in-model dropout draws differ per
        process, so an exact resume needs each one's, the GPU generator's too."""
        state = RngState.capture(self.shuffle_rng, self.dropout_rng, self.dist.device)
        if not self.dist.distributed:
            return [state]
        gathered: list[Any] = [None] * self.dist.world_size
        torch.distributed.all_gather_object(gathered, state)
        return gathered

    def save_last(self, rngs: list[RngState]) -> None:
        resume = ResumeState(
            progress=self.state,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            rng=rngs,
            scaler=self.precision.state_dict(),
        )
        Checkpoint(self.info, self.model.state_dict(), resume=resume).save(self.out / checkpoint.LAST)

    def save_best(self, dev_loss: float) -> None:
        Checkpoint(self.info, self.model.state_dict(), epoch=self.state.epoch, dev_loss=dev_loss).save(
            self.out / checkpoint.BEST
        )

    def restore(self) -> bool:
        path = self.out / checkpoint.LAST
        if not path.is_file():
            return False
        ckpt = Checkpoint.load(path)
        if ckpt.resume is None:
            raise checkpoint.CheckpointError(f"{path} holds no training state to resume from")
        # only the epoch budget may change between a run and its resumption
        same_training = replace(ckpt.run.train_config, epochs=self.cfg.epochs) == self.cfg
        if not same_training or ckpt.run.model_config != self.model_cfg:
            raise checkpoint.CheckpointError(
                f"{path} was written with a different configuration; use a new --out folder"
            )
        checkpoint.load_weights(self.model, ckpt.state_dict, str(path))
        try:
            self.optimizer.load_state_dict(ckpt.resume.optimizer)
            self.scheduler.load_state_dict(ckpt.resume.scheduler)
            self.precision.load_state_dict(ckpt.resume.scaler)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise checkpoint.CheckpointError(f"{path} holds an optimiser state that does not fit ({err!r})") from None
        rngs = ckpt.resume.rng
        if len(rngs) != self.dist.world_size:
            self.console.print(
                f"[yellow]resuming with {self.dist.world_size} processes, not {len(rngs)}: "
                "in-model dropout draws will differ from an uninterrupted run[/]"
            )
        rngs[self.dist.rank if len(rngs) == self.dist.world_size else 0].restore(
            self.shuffle_rng, self.dropout_rng, self.dist.device
        )
        self.state = ckpt.resume.progress
        return True

    def write_run_files(self) -> None:
        atomic.write_json(self.out / "config.json", self.info.to_dict())
        write_splits(self.out / "splits.csv", self.parts)

    # -- training --------------------------------------------------------------------------------

    def train_epoch(self, progress: Progress | None, task: Any) -> float:
        """One pass over the epoch's global batches (train/batching.py); each process trains on its share
        of every batch (all of it when there is one process), so the update does not depend on the
        process count. Batches are assembled ahead on background threads (train/prefetch.py)."""
        self.model.train()
        cfg, ctx = self.cfg, self.dist
        batches = epoch_batches(self.train_lengths, cfg.batch_size, self.shuffle_rng, cfg.batching)
        total, n = 0.0, 0
        for global_ids, mine, idle, batch in prefetched(self._share, batches, cfg.prefetch):
            if cfg.training == "optimized":
                draws = modality_dropout.draw(len(global_ids), cfg.dropout_per, self.dropout_rng)[mine]
                batch = modality_dropout.apply(batch, draws, cfg.drop_audio, cfg.drop_video)
            if self.masks.active:
                audio, audio_mask = augment.augment(
                    batch.audio, batch.audio_mask, self.masks, self.model.audio_norm.mean.cpu(), self.dropout_rng
                )
                batch = replace(batch, audio=audio, audio_mask=audio_mask)
            batch = batch.to(ctx.device)
            with self.precision.autocast():
                out = self.step_model(*batch.inputs())
                # DDP averages gradients over processes: scale so the sum matches one process's batch mean
                loss = multitask_loss(
                    self.model,
                    out.heads,
                    batch,
                    cfg.loss_weights,
                    denominator=len(global_ids) / ctx.world_size,
                    label_smoothing=cfg.label_smoothing,
                    class_weights=self.class_weights,
                ) * (0.0 if idle else 1.0)
            self.precision.step(loss, self.optimizer, self.model.parameters(), cfg.grad_clip)
            self.scheduler.after_step()
            total += loss.item() * len(global_ids) / ctx.world_size
            n += len(global_ids)
            if progress is not None:
                progress.update(task, advance=1, loss=total / n)
        if ctx.distributed:  # each process summed its own shares
            summed = torch.tensor([total], device=ctx.device)
            torch.distributed.all_reduce(summed)
            total = float(summed.item())
        return total / max(n, 1)

    def _share(self, global_ids: list[int]) -> tuple[list[int], slice, bool, Any]:
        """This process's share of a global batch, assembled (on the prefetch thread: no random draws)."""
        mine = self.dist.share(len(global_ids))
        # a last batch smaller than the process count leaves some processes no clip; they still
        # step (DDP's all-reduce needs every process) on a stand-in clip whose loss counts zero
        idle = mine.start == mine.stop
        if idle:
            mine = slice(0, 1)
        return global_ids, mine, idle, self.data["train"].batch(global_ids[mine])

    def fit(self, resume: bool = False) -> RunMetrics | None:
        """Train (continuing the run in `out` if `resume`), then evaluate; the metrics on the main
        process, None on the others."""
        self.out.mkdir(parents=True, exist_ok=True)
        if resume and self.restore():
            self.console.print(f"[bold]resuming[/] {self.out} after epoch {self.state.epoch}")
        if self.dist.is_main:
            self.write_run_files()
        steps = math.ceil(len(self.data["train"]) / self.cfg.batch_size)
        dev = self.data.get("dev", self.data["train"])
        with self._progress() as progress:
            for epoch in range(self.state.epoch + 1, self.cfg.epochs + 1):
                if self.stopped_early():  # checked first, so a resumed run that had stopped stays stopped
                    self.console.print(
                        f"no better dev loss for {self.cfg.early_stop_patience} epochs: stopped after epoch "
                        f"{self.state.epoch}, best epoch {self.state.best_epoch}"
                    )
                    break
                task = (
                    progress.add_task(f"epoch {epoch}/{self.cfg.epochs}", total=steps, loss=float("nan"))
                    if progress
                    else None
                )
                t0 = time.perf_counter()
                train_loss = self.train_epoch(progress, task)
                report = evaluate(self.model, dev, self.labels, self.cfg.loss_weights, self.cfg.batch_size)
                self.scheduler.after_epoch(report.loss)
                self.state.epoch = epoch
                self.state.history.append(
                    {
                        "epoch": epoch,
                        "train_loss": train_loss,
                        "dev_loss": report.loss,
                        "dev_macro_f1": report.macro_f1,
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "seconds": time.perf_counter() - t0,
                    }
                )
                improved = report.loss < self.state.best_dev_loss
                if improved:
                    self.state.best_dev_loss, self.state.best_epoch = report.loss, epoch
                rngs = self.rng_states()
                if self.dist.is_main:  # every process holds the same weights; one writes them
                    if improved:
                        self.save_best(report.loss)
                    self.save_last(rngs)
                self.dist.barrier()
                if progress:
                    progress.remove_task(task)
                self.console.print(
                    f"epoch {epoch:>3}  train loss {train_loss:.4f}  dev loss {report.loss:.4f}  "
                    f"dev macro-F1 {report.macro_f1:.3f}  lr {self.optimizer.param_groups[0]['lr']:.2e}"
                    f"  {time.perf_counter() - t0:5.1f}s{'  *best' if improved else ''}"
                )
        metrics = self.finish() if self.dist.is_main else None
        distributed.teardown(self.dist)
        return metrics

    def stopped_early(self) -> bool:
        patience = self.cfg.early_stop_patience
        best = self.state.best_epoch
        return patience > 0 and best is not None and self.state.epoch - best >= patience

    def _progress(self) -> Progress:
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeRemainingColumn(),
        ]
        return Progress(*columns, console=self.console, transient=True, disable=not self.show_progress)

    def finish(self) -> RunMetrics:
        """Evaluate the best checkpoint on dev and on test under each condition; write metrics and plots."""
        model, _ = checkpoint.load_model(self.out)
        model.to(self.dist.device)
        bs, w = self.cfg.batch_size, self.cfg.loss_weights
        evaluations: dict[str, Evaluation] = {}
        if "dev" in self.data:
            evaluations["dev"] = evaluate(model, self.data["dev"], self.labels, w, bs)
        for condition, missing in CONDITIONS.items():
            evaluations[condition_key(condition)] = evaluate(model, self.data["test"], self.labels, w, bs, missing)
        metrics = RunMetrics(
            model=self.cfg.model,
            training=self.cfg.training,
            labels=self.labels,
            best_epoch=self.state.best_epoch,
            epochs=self.state.epoch,
            parameters=count_parameters(model),
            history=self.state.history,
            evaluations=evaluations,
        )
        if "dev" in evaluations:
            metrics.calibration = self.calibrate(evaluations["dev"], evaluations["test"])
        metrics.save(self.out)
        plots.save_figure(
            plots.confusion_matrix_figure(
                metrics.test.confusion, self.labels, f"{self.cfg.model} test (macro-F1 {metrics.test.macro_f1:.3f})"
            ),
            self.out / "confusion_matrix.png",
        )
        plots.save_figure(
            plots.training_curves_figure(self.state.history, self.state.best_epoch), self.out / "training_curves.png"
        )
        return metrics

    def calibrate(self, dev: Evaluation, test: Evaluation) -> CalibrationReport:
        """Temperature scaling fitted on dev; stored in the checkpoint (export puts it into the
        manifest, the runtime applies it) with ECE / NLL before and after, and a reliability diagram."""
        assert dev.outputs is not None and test.outputs is not None  # fresh evaluations carry them
        d, t = dev.outputs, test.outputs
        report = calibrate(d.logits, d.targets, d.head_logits, evaluation={"test": (t.logits, t.targets)})
        best = Checkpoint.load(self.out / checkpoint.BEST)
        replace(best, calibration=report).save(self.out / checkpoint.BEST)
        plots.save_figure(
            plots.reliability_figure(
                {"dev (T fitted here)": (d.logits, d.targets), "test": (t.logits, t.targets)}, report.temperature
            ),
            self.out / "reliability.png",
        )
        return report


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
