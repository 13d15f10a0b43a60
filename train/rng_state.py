"""One process's random state, as plain tensors and numbers (what a safe checkpoint load accepts).

An exact resume needs every generator a training step may draw from: torch's global CPU (and GPU)
generator, which in-model dropout uses, the trainer's own shuffle and modality-dropout generators, and
python's and numpy's global generators, in case any code on the way draws from them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class RngState:
    torch: torch.Tensor
    shuffle: torch.Tensor
    dropout: torch.Tensor
    python: dict[str, Any]
    numpy: dict[str, Any]
    cuda: torch.Tensor | None = None

    @classmethod
    def capture(cls, shuffle: torch.Generator, dropout: torch.Generator, device: torch.device) -> RngState:
        version, internal, gauss_next = random.getstate()
        kind, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
        return cls(
            torch=torch.get_rng_state(),
            shuffle=shuffle.get_state(),
            dropout=dropout.get_state(),
            python={"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss_next},
            numpy={
                "kind": kind,
                "keys": torch.from_numpy(np.asarray(keys, np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached": float(cached),
            },
            cuda=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        )

    def restore(self, shuffle: torch.Generator, dropout: torch.Generator, device: torch.device) -> None:
        torch.set_rng_state(self.torch)
        if self.cuda is not None and device.type == "cuda":
            torch.cuda.set_rng_state(self.cuda, device)
        shuffle.set_state(self.shuffle)
        dropout.set_state(self.dropout)
        p = self.python
        random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss"]))
        n = self.numpy
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("torch", "shuffle", "dropout", "python", "numpy")}
        if self.cuda is not None:
            out["cuda"] = self.cuda
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RngState:
        return cls(**data)
