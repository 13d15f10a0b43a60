"""Work ahead: `prefetched(make, items)` yields make(item) for each item in order, computed up to
`depth` items ahead on `depth` background threads.

Assembling a training batch (reading clips, padding, copying into tensors; numpy and torch release the
GIL for the copies) then overlaps the steps. Measured: a batch of 32 CREMA-D-like clips with 4096-dim
video takes about 0.3 s to assemble on this CPU, a few percent of a CPU training step, but several GPU
steps, which would otherwise wait for it. Results come back in order and `make` draws nothing random:
the batches and every generator's state are the same as without it, so runs stay reproducible and
resumable.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")


def prefetched(make: Callable[[T], U], items: Iterable[T], depth: int = 2) -> Iterator[U]:
    if depth < 1:
        yield from map(make, items)
        return
    pending: collections.deque[Future[U]] = collections.deque()
    source = iter(items)
    with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="prefetch") as pool:
        try:
            for item in source:
                pending.append(pool.submit(make, item))
                if len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # stopped early (an error, a break): drop what was queued
            for future in pending:
                future.cancel()
