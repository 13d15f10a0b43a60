"""Feature corpus -> padded torch batches, and the normalisation statistics of a partition."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from auxformer.runtime.batching import pad_batch
from auxformer.runtime.contracts import ClipFeatures
from auxformer.train.corpus import CorpusEntry, FeatureCorpus

# Keep a partition in memory when it is smaller than this; larger ones are read clip by clip.
IN_MEMORY_BYTES = 2 << 30


@dataclass
class Batch:
    audio: torch.Tensor
    audio_mask: torch.Tensor
    video: torch.Tensor
    video_mask: torch.Tensor
    labels: torch.Tensor
    clip_ids: list[str]

    def inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.audio, self.audio_mask, self.video, self.video_mask

    def to(self, device: torch.device) -> Batch:
        tensors = {k: v.to(device) for k, v in self.__dict__.items() if isinstance(v, torch.Tensor)}
        return Batch(**{**self.__dict__, **tensors})

    def without(self, modality: str | None) -> Batch:
        """The batch with one modality removed (mask false, values zero): a test condition."""
        if modality is None:
            return self
        values, mask = getattr(self, modality), getattr(self, f"{modality}_mask")
        changed = {modality: torch.zeros_like(values), f"{modality}_mask": torch.zeros_like(mask)}
        return Batch(**{**self.__dict__, **changed})


def collate(clips: Sequence[ClipFeatures], index: dict[str, int]) -> Batch:
    """Labelled clips -> one batch padded to its longest clip (`index`: label -> class number)."""
    arrays = {k: torch.from_numpy(v) for k, v in pad_batch(clips).items()}
    labels = torch.tensor([index[c.label] for c in clips], dtype=torch.long)
    return Batch(**arrays, labels=labels, clip_ids=[c.clip_id for c in clips])


class ClipDataset(Dataset):
    def __init__(self, corpus: FeatureCorpus, entries: Sequence[CorpusEntry], labels: Sequence[str]):
        self.corpus, self.entries = corpus, list(entries)
        self.index = {label: i for i, label in enumerate(labels)}
        self.cache: list[ClipFeatures] | None = None
        if _estimated_bytes(corpus, self.entries) < IN_MEMORY_BYTES:
            self.cache = [corpus.load(e) for e in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> ClipFeatures:
        return self.cache[i] if self.cache is not None else self.corpus.load(self.entries[i])

    def collate(self, clips: list[ClipFeatures]) -> Batch:
        return collate(clips, self.index)

    def loader(self, batch_size: int) -> DataLoader:
        """In order, for evaluation."""
        return DataLoader(self, batch_size=batch_size, shuffle=False, collate_fn=self.collate, num_workers=0)

    def batch(self, indices: Sequence[int]) -> Batch:
        return self.collate([self[int(i)] for i in indices])

    def lengths(self) -> list[int]:
        """Frames per clip (audio + video): what a padded batch's cost follows. From the manifest's
        length columns where it has them, else from the clips."""
        out = []
        for i, entry in enumerate(self.entries):
            if "audio_frames" in entry.extra and "video_frames" in entry.extra:
                out.append(int(entry.extra["audio_frames"]) + int(entry.extra["video_frames"]))
            else:
                clip = self[i]
                out.append(len(clip.audio_mask) + len(clip.video_mask))
        return out


def _estimated_bytes(corpus: FeatureCorpus, entries: Sequence[CorpusEntry]) -> float:
    frames = [(int(e.extra.get("audio_frames", 0)), int(e.extra.get("video_frames", 0))) for e in entries]
    if not frames or not any(a or v for a, v in frames):
        return 0.0  # no length columns: small hand-made corpus, assume it fits
    dv = corpus.video_dim
    return float(sum(4 * (a * 131 + v * (dv + 1)) for a, v in frames))


def normalization_stats(dataset: ClipDataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-dimension mean and std over the valid frames of a partition (one streaming pass)."""
    sums: dict[str, list] = {}
    for i in range(len(dataset)):
        clip = dataset[i]
        for m in ("audio", "video"):
            x = getattr(clip, m)[getattr(clip, f"{m}_mask")].astype(np.float64)
            acc = sums.setdefault(m, [0, 0.0, 0.0])
            acc[0] += len(x)
            acc[1] = acc[1] + x.sum(0)
            acc[2] = acc[2] + (x**2).sum(0)
    stats = {}
    for m in ("audio", "video"):
        n, s, ss = sums.get(m, [0, 0.0, 0.0])
        if n == 0:
            dim = getattr(dataset[0], m).shape[1]
            stats[m] = (np.zeros(dim, np.float32), np.ones(dim, np.float32))
            continue
        mean = s / n
        std = np.sqrt(np.maximum(ss / n - mean**2, 0.0))
        stats[m] = (mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32))
    return stats
