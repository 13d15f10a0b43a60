"""Checkpoints: everything needed to rebuild a model, stored so that reading one runs no code.

A checkpoint file is a `torch.save` of plain data only: a format tag, the metadata as one JSON string
(what the run is, its epoch, dev loss and calibration, and for `last.pt` the training progress) and
the tensors (weights with the normalisation statistics as buffers; for `last.pt` also torch's
optimiser and scheduler state and each process's random state). It is read with
`torch.load(weights_only=True)` only, which refuses any pickle that names a Python object: a file
someone sent you cannot run code when you export or resume it. Writes are atomic.
"""

from __future__ import annotations

import json
import math
import pickle
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from auxformer.calibration.temperature import CalibrationReport
from auxformer.common import atomic

from .config import ModelConfig, TrainConfig
from .model import AuxFormer, build_model
from .rng_state import RngState

FORMAT = "auxformer-checkpoint/2"
BEST = "checkpoint.pt"  # best dev loss: what export and evaluation use
LAST = "last.pt"  # end of the latest epoch, with optimiser and RNG state: what resume uses
_RESAVE = "re-train with this version of auxformer (its checkpoints hold plain tensors and JSON only)"


class CheckpointError(ValueError):
    pass


@dataclass
class RunInfo:
    """What a run is: its model, training configuration, data and their statistics (also `config.json`)."""

    model_name: str
    model_config: ModelConfig
    train_config: TrainConfig
    labels: list[str]
    corpus: str | None = None  # absolute: export finds it from any working folder
    feature_spec: dict[str, Any] = field(default_factory=dict)
    length_stats: dict[str, dict[str, int]] = field(default_factory=dict)  # frame-count percentiles
    parameters: int = 0
    partition_sizes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # the nested configs too (their to_dict is asdict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        return cls(
            **{
                **data,
                "model_config": ModelConfig.from_dict(data["model_config"]),
                "train_config": TrainConfig.from_dict(data["train_config"]),
            }
        )


@dataclass
class TrainState:
    epoch: int = 0  # epochs finished
    best_dev_loss: float = math.inf
    best_epoch: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class ResumeState:
    """What `last.pt` adds to a checkpoint so training continues exactly where it stopped."""

    progress: TrainState
    optimizer: dict[str, Any]  # torch's optimiser state dict: tensors and numbers
    scheduler: dict[str, Any]
    rng: list[RngState]  # one per process
    scaler: dict[str, Any] = field(default_factory=dict)  # fp16's gradient scaler (empty otherwise)


@dataclass
class Checkpoint:
    run: RunInfo
    state_dict: dict[str, torch.Tensor]
    epoch: int | None = None  # the epoch whose weights these are (best checkpoint)
    dev_loss: float | None = None
    calibration: CalibrationReport | None = None  # temperature scaling fitted on dev after training
    resume: ResumeState | None = None  # last.pt only

    def build_model(self, what: str = "this checkpoint") -> AuxFormer:
        """The model with these weights, in eval mode (`what` names the checkpoint in errors)."""
        try:
            model = build_model(self.run.model_name, self.run.model_config)
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{what}'s model cannot be built: {err}") from None
        load_weights(model, self.state_dict, what)
        return model.eval()

    def save(self, path: str | Path) -> None:
        metadata: dict[str, Any] = {
            "run": self.run.to_dict(),
            "epoch": self.epoch,
            "dev_loss": self.dev_loss,
            "calibration": self.calibration.to_dict() if self.calibration else None,
        }
        payload: dict[str, Any] = {"format": FORMAT, "state_dict": dict(self.state_dict)}
        if self.resume is not None:
            metadata["progress"] = asdict(self.resume.progress)
            payload["optimizer"] = self.resume.optimizer
            payload["scheduler"] = self.resume.scheduler
            payload["rng"] = [r.to_dict() for r in self.resume.rng]
            payload["scaler"] = self.resume.scaler
        payload["metadata"] = json.dumps(metadata)
        with atomic.atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        """Read a checkpoint (or a run folder's best one) without running any code it might contain."""
        path = resolve(path)
        raw = _load_plain(path)
        if not isinstance(raw, dict) or "format" not in raw:
            raise CheckpointError(f"{path} is not an auxformer checkpoint")
        if raw["format"] != FORMAT:
            raise CheckpointError(
                f"{path} is an auxformer checkpoint of format {raw['format']!r}; this version reads {FORMAT!r}: "
                f"{_RESAVE}"
            )
        try:
            meta = json.loads(raw["metadata"])
            resume = None
            if "progress" in meta:
                resume = ResumeState(
                    progress=TrainState(**meta["progress"]),
                    optimizer=raw["optimizer"],
                    scheduler=raw["scheduler"],
                    rng=[RngState.from_dict(r) for r in raw["rng"]],
                    scaler=raw.get("scaler", {}),
                )
            calibration = meta.get("calibration")
            return cls(
                run=RunInfo.from_dict(meta["run"]),
                state_dict=raw["state_dict"],
                epoch=meta.get("epoch"),
                dev_loss=meta.get("dev_loss"),
                calibration=CalibrationReport(**calibration) if calibration else None,
                resume=resume,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path} is an incomplete or damaged auxformer checkpoint ({err!r})") from None


def _load_plain(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        named = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if named:
            raise CheckpointError(
                f"{path} is refused: loading it would need unpickling arbitrary Python objects (it names "
                f"{named.group(1)}), which can run any code. It is not a checkpoint of this version (older "
                f"versions and other tools pickle whole objects); {_RESAVE}"
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
        reason = detail.group(1).strip() if detail else "not a torch file"
        raise CheckpointError(f"{path} is not a readable checkpoint: a safe load refuses it ({reason})") from None
    except Exception as err:  # a torn or foreign file: say which
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated, damaged or not a torch file): {reason}"
        ) from None


def load_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Weights into `model`; weights that do not fit it (missing, unexpected, another shape) are the
    file's fault, said in one line rather than torch's list of every tensor."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{what}'s weights are not a mapping of names to tensors: the file is damaged")
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        problems = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        first = problems[0] if problems else str(err)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckpointError(f"{what}'s weights do not fit its model: {first}{more}") from None


def resolve(path: str | Path) -> Path:
    """A run folder means its best checkpoint."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    return path


def load_model(path: str | Path) -> tuple[AuxFormer, Checkpoint]:
    """Rebuild the model of a checkpoint (or run folder), in eval mode, with its checkpoint."""
    ckpt = Checkpoint.load(path)
    return ckpt.build_model(str(resolve(path))), ckpt
