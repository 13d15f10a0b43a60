"""One stage of the stream in a thread of its own: jobs run one at a time, in the order given, and
their results come back in that order.

The stages' heavy work is native code that releases the GIL while it runs (onnxruntime's `run`,
OpenCV, openSMILE through ctypes, FFmpeg decoding in PyAV; measured: README, "Timelines"), so the
audio descriptors, the faces and the model's inference run at the same time on different cores while
the caller's thread only hands data between them. At most `depth` jobs wait or run: `submit` returns
the oldest results first when that many are in flight, so the memory jobs hold stays bounded.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

J = TypeVar("J")
R = TypeVar("R")


class OrderedWorker(Generic[J, R]):
    def __init__(self, name: str, work: Callable[[J], R], depth: int = 2):
        self.work, self.depth = work, max(1, depth)
        self.cpu_seconds = 0.0  # CPU time of the worker's thread in `work`
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"stream-{name}")
        self._jobs: deque[tuple[J, Future[R]]] = deque()

    def _run(self, job: J) -> R:
        t = time.thread_time()
        try:
            return self.work(job)
        finally:
            self.cpu_seconds += time.thread_time() - t

    def submit(self, job: J) -> list[tuple[J, R]]:
        """Queue `job`; returns the results that had to be waited for to stay within `depth` (oldest first)."""
        done = self.results(wait=len(self._jobs) >= self.depth)
        self._jobs.append((job, self._pool.submit(self._run, job)))
        return done

    def results(self, wait: bool = False, wait_all: bool = False) -> list[tuple[J, R]]:
        """The finished jobs at the head of the queue with their results; `wait`: at least the oldest one,
        `wait_all`: every job. A job that raised raises here."""
        out = []
        while self._jobs and (wait_all or wait or self._jobs[0][1].done()):
            job, future = self._jobs.popleft()
            out.append((job, future.result()))
            wait = False
        return out

    @property
    def waiting(self) -> list[J]:
        """The jobs not yet handed back, oldest first."""
        return [job for job, _ in self._jobs]

    def close(self) -> None:
        """Drop the jobs not started; waits for the one running (a block's compute: a fraction of a second)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._jobs.clear()
