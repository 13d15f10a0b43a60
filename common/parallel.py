"""An ordered process-pool map that survives workers dying on bad input.

FFmpeg and OpenCV are native code: a hostile file can kill the process that reads it. Jobs run in
`spawn` worker processes (no inherited torch or onnxruntime thread state); when a worker dies, the
jobs that were in flight are retried one at a time in a fresh process, and the one that kills its
process again is answered by `crashed(job)` instead of stopping the batch.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

J = TypeVar("J")
R = TypeVar("R")


def default_workers(jobs: int) -> int:
    return max(1, min(jobs, os.cpu_count() or 1))


def ordered_map(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    workers: int,
    crashed: Callable[[J], R],
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[R]:
    """Yield fn(job) for each job, in order. workers <= 1 runs in this process (no crash guard).

    At most 2 * workers + 2 jobs are in flight, so memory stays bounded however long `jobs` is."""
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        for job in jobs:
            yield fn(job)
        return
    ctx = multiprocessing.get_context("spawn")

    def new_pool(n: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(n, mp_context=ctx, initializer=initializer, initargs=initargs)

    pending: deque[int] = deque(range(len(jobs)))
    suspects: set[int] = set()
    results: dict[int, R] = {}
    inflight: dict[Future[R], int] = {}
    window = 2 * workers + 2
    next_out = 0
    pool = new_pool(workers)
    try:
        while next_out < len(jobs):
            # results held back behind a slow head job count too, or they pile up without bound; the head
            # itself always goes (pending stays sorted, so it is first there when not in flight)
            while pending and (len(inflight) + len(results) < window or pending[0] == next_out):
                i = pending.popleft()
                if i in suspects:
                    results[i] = _run_alone(new_pool, fn, jobs[i], crashed)
                else:
                    inflight[pool.submit(fn, jobs[i])] = i
            if inflight:
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                try:
                    for future in done:
                        results[inflight[future]] = future.result()
                        del inflight[future]
                except BrokenProcessPool:
                    lost = sorted(inflight.values())
                    suspects.update(lost)
                    pending.extendleft(reversed(lost))
                    inflight.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = new_pool(workers)
            while next_out in results:
                yield results.pop(next_out)
                next_out += 1
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_alone(
    new_pool: Callable[[int], ProcessPoolExecutor], fn: Callable[[J], R], job: J, crashed: Callable[[J], R]
) -> R:
    solo = new_pool(1)
    try:
        return solo.submit(fn, job).result()
    except BrokenProcessPool:
        return crashed(job)
    finally:
        solo.shutdown(wait=False, cancel_futures=True)
