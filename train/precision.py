"""Training precision: fp32, or mixed precision through autocast (bf16; fp16 with a gradient scaler).

fp32 is the default everywhere. bf16 needs no scaler (its exponent range is fp32's); on a CPU it is
allowed only where the CPU computes bf16 natively (AVX512-BF16 or AMX), since elsewhere oneDNN
emulates it and a step gets slower, not faster. fp16 is for GPUs: its gradients are scaled so small
ones do not flush to zero, and a step whose gradients overflow is skipped by the scaler.
Weights, optimiser state and checkpoints stay fp32 in every mode; evaluation runs in fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from .config import PRECISIONS

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class PrecisionError(ValueError):
    """A precision this device cannot train in."""


def cpu_has_native_bf16() -> bool:
    """Does this CPU compute bf16 natively (AVX512-BF16 / AMX), rather than through oneDNN's emulation?"""
    try:
        with open("/proc/cpuinfo") as f:
            flags = {word for line in f if line.startswith("flags") for word in line.split()}
    except OSError:  # not Linux: torch's own (looser) check
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def check(precision: str, device: torch.device) -> None:
    """Raise PrecisionError with the reason when `device` cannot train in `precision`."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if device.type == "cpu":
        if precision == "fp16":
            raise PrecisionError(
                "--precision fp16 is for GPUs: torch has no fast fp16 kernels on the CPU; use fp32, or bf16 "
                "on a CPU with AVX512-BF16 / AMX"
            )
        if precision == "bf16" and not cpu_has_native_bf16():
            raise PrecisionError(
                "--precision bf16 needs a CPU with AVX512-BF16 or AMX (this one would emulate bf16, slower "
                "than fp32); use fp32 here"
            )
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise PrecisionError("--precision bf16 needs a GPU with bf16 support (Ampere or newer); use fp16 or fp32")


@dataclass
class Precision:
    """Autocast and, for fp16, a gradient scaler, for one device. `check=False` skips the device check
    (tests exercise the maths on hardware that would be refused for speed)."""

    name: str = "fp32"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    check: bool = True

    def __post_init__(self) -> None:
        if self.check:
            check(self.name, self.device)
        elif self.name not in PRECISIONS:
            raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.name!r}")
        self.scaler = torch.amp.GradScaler(self.device.type) if self.name == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.name])

    def step(
        self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, parameters: Iterable[torch.Tensor], clip: float
    ) -> None:
        """Backward, gradient-norm clipping (on the unscaled gradients) and the optimiser step."""
        params = list(parameters)
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, clip)
        self.scaler.step(optimizer)  # skipped when the gradients overflowed
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The scaler's state (empty without one): part of an exact resume."""
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
