"""Length-bucketed training batches and the prefetch thread: every clip once per epoch, reshuffled every
epoch from the seed, little padding, the same batches on every data-parallel process; prefetching
changes nothing but when a batch is made."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from auxformer.train.batching import epoch_batches, padding_fraction
from auxformer.train.distributed import Context
from auxformer.train.prefetch import prefetched


def _lengths(n: int = 300, seed: int = 0) -> list[int]:
    """CREMA-D-like: 1.3-5 s at 100 audio + 30 video frames per second."""
    seconds = np.clip(np.random.default_rng(seed).lognormal(np.log(2.5), 0.25, n), 1.3, 5.0)
    return [round(s * 130) for s in seconds]


def _epochs(lengths, how, seed=0, epochs=3, batch_size=32):
    g = torch.Generator().manual_seed(seed)
    return [epoch_batches(lengths, batch_size, g, how) for _ in range(epochs)]


@pytest.mark.parametrize("how", ["bucketed", "random"])
@pytest.mark.parametrize("n", [1, 31, 32, 300])
def test_every_clip_once_per_epoch_and_only_the_last_batch_short(how, n):
    for batches in _epochs(_lengths(n), how):
        assert sorted(i for b in batches for i in b) == list(range(n))
        assert len(batches) == -(-n // 32)
        assert all(len(b) == 32 for b in batches[:-1]) and 1 <= len(batches[-1]) <= 32


def test_same_seed_same_batches_and_every_epoch_reshuffled():
    lengths = _lengths()
    first, again = _epochs(lengths, "bucketed"), _epochs(lengths, "bucketed")
    assert first == again
    assert _epochs(lengths, "bucketed", seed=1) != first
    pairs = [{frozenset(b) for b in batches} for batches in first]
    # which clips share a batch changes between epochs, and so does the order of the batches
    assert pairs[0] != pairs[1] and pairs[1] != pairs[2]
    assert [sorted(b) for b in first[0]] != [sorted(b) for b in first[1]]


def test_buckets_pad_far_less_than_random_batches():
    lengths = _lengths()
    bucketed = np.mean([padding_fraction(b, lengths) for b in _epochs(lengths, "bucketed")])
    random = np.mean([padding_fraction(b, lengths) for b in _epochs(lengths, "random")])
    assert bucketed < random / 3, (bucketed, random)


def test_random_batches_are_the_earlier_trainers():
    """`random` draws exactly what the trainer drew before buckets: one permutation, cut in order."""
    g = torch.Generator().manual_seed(5)
    order = torch.randperm(70, generator=torch.Generator().manual_seed(5)).tolist()
    assert epoch_batches([1] * 70, 16, g, "random") == [order[i : i + 16] for i in range(0, 70, 16)]


@pytest.mark.parametrize("world", [2, 3])
def test_processes_train_disjoint_shares_of_the_same_batches(world):
    """Under DDP every process draws the same global batches from the same seed and takes its share of
    each: together they cover every clip once, and every process steps as often."""
    lengths = _lengths(100)
    per_rank = []
    for rank in range(world):
        ctx = Context(rank=rank, world_size=world)
        batches = _epochs(lengths, "bucketed", epochs=1)[0]
        per_rank.append([b[ctx.share(len(b))] for b in batches])
    assert len({len(steps) for steps in per_rank}) == 1
    seen = [i for steps in per_rank for share in steps for i in share]
    assert sorted(seen) == list(range(100))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="batching must be one of"):
        epoch_batches([1, 2], 2, torch.Generator(), "sorted")
    with pytest.raises(ValueError, match=">= 1"):
        epoch_batches([1, 2], 0, torch.Generator())


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetched_keeps_order_and_runs_off_the_calling_thread(depth):
    threads = set()

    def make(i):
        threads.add(threading.current_thread().name)
        return i * i

    assert list(prefetched(make, range(20), depth)) == [i * i for i in range(20)]
    assert (threading.current_thread().name in threads) == (depth == 0)


def test_prefetched_raises_the_workers_error_and_stops_early_cleanly():
    def make(i):
        if i == 3:
            raise KeyError("clip 3 is broken")
        return i

    with pytest.raises(KeyError, match="clip 3"):
        list(prefetched(make, range(10)))
    made = []
    items = prefetched(made.append, range(100), 2)
    next(items)
    items.close()
    assert len(made) <= 4  # it stopped instead of running ahead through every item
