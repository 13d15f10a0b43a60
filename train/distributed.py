"""Data-parallel training with `torchrun` (PyTorch DDP: NCCL on GPUs, gloo on CPU).

Every process draws the same shuffled order and the same modality-dropout draws, then takes its own
contiguous share of each *global* batch. With gradients averaged by DDP and each share's loss scaled
by its size, a step of N processes equals a step of one process on the whole batch, up to numerical
noise (and up to the in-model dropout masks, which each process draws for its own share).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def share(self, n: int) -> slice:
        """This process's contiguous share of a global batch of n clips (the first shares take the rest)."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {preference} was asked for, but torch sees no CUDA device")
        # "cuda" means this process's GPU under torchrun; "cuda:N" names one
        return torch.device(preference) if ":" in preference else torch.device("cuda", local_rank)
    return torch.device(preference)


def setup(device: str = "auto") -> Context:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world == 1:
        return Context(device=dev)
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Context(rank=dist.get_rank(), world_size=world, local_rank=local_rank, device=dev)


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
