"""Work a step ahead: `prefetched(make, items)` yields make(item) for each item in order, computed up to
`depth` items ahead on one background thread.

Assembling a training batch (reading clips, padding, copying into tensors) then overlaps the previous
step. One thread, in order, and no random draws in `make`: the batches and every generator's state are
the same as without it, so runs stay reproducible and resumable.
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
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
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
