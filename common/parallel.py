"""An ordered process-pool map that survives workers dying on bad input.

FFmpeg and OpenCV are native code: a hostile file can kill the process that reads it. Jobs run in
`spawn` worker processes (no inherited torch or onnxruntime thread state); when a worker dies, the
jobs that were in flight are retried one at a time in a fresh process, and the one that kills its
process again is answered by `crashed(job)` instead of stopping the batch.

Workers never outlive the process that owns the pool, however it ends (kill -9 included): on Linux
the kernel signals a worker when its parent dies, and everywhere a watchdog thread in each worker
watches for its parent going away. Workers ignore Ctrl-C (the owner decides what it means). A pool
left early (an exception, a closed generator), or still running in a daemon thread when the program
exits (a SIGTERM handler calling sys.exit while a producer thread drives the pool), has its workers
killed at once: no one will read their results, and the program would otherwise wait for every job in
flight. multiprocessing's resource tracker exits by itself once every worker and the owner are gone.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
import weakref
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

    guarded = (os.getpid(), initializer, initargs)

    def new_pool(n: int) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_start_worker, initargs=guarded)
        _driven_by[pool] = threading.current_thread()
        return pool

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
                    _close(pool, kill=False)
                    pool = new_pool(workers)
            while next_out in results:
                yield results.pop(next_out)
                next_out += 1
    finally:
        _close(pool, kill=bool(inflight))  # jobs still in flight: left early, their results unwanted


def _run_alone(
    new_pool: Callable[[int], ProcessPoolExecutor], fn: Callable[[J], R], job: J, crashed: Callable[[J], R]
) -> R:
    solo = new_pool(1)
    future: Future[R] | None = None
    try:
        future = solo.submit(fn, job)
        return future.result()
    except BrokenProcessPool:
        return crashed(job)
    finally:
        _close(solo, kill=future is None or not future.done())


def _close(pool: ProcessPoolExecutor, kill: bool) -> None:
    """Shut `pool` down without waiting; `kill`: its results are not wanted, stop its workers now (else
    they finish their jobs first, and a closing interpreter waits for them)."""
    workers = list((getattr(pool, "_processes", None) or {}).values()) if kill else []
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.kill()


# the thread driving each open pool: at exit, pools of threads that will never read their results go
_driven_by: weakref.WeakKeyDictionary[ProcessPoolExecutor, threading.Thread] = weakref.WeakKeyDictionary()


def _kill_abandoned_pools() -> None:
    for pool, thread in list(_driven_by.items()):
        if thread.daemon or not thread.is_alive() or thread is threading.main_thread():
            _close(pool, kill=True)


# runs before concurrent.futures' own exit hook (these run last-registered first), which waits for
# every job in flight; the public atexit would run too late
getattr(threading, "_register_atexit", atexit.register)(_kill_abandoned_pools)

WATCH_SECONDS = 0.5  # how often a worker checks that its parent is still there (where the kernel cannot tell it)
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _start_worker(parent: int, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    """Runs first in every worker: tie its life to the parent's, then the caller's initializer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        # SIGHUP, not SIGKILL: the kernel sends it when the *thread* that started this worker ends, which
        # is not always the process; the handler checks which it was
        signal.signal(signal.SIGHUP, lambda *_: _exit_if_orphaned(parent))
        with contextlib.suppress(OSError, AttributeError):  # no prctl (an odd libc): the watchdog still works
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGHUP), 0, 0, 0)
    _exit_if_orphaned(parent)  # the parent may have died before the kernel was asked to tell us
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watchdog", daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def _watch_parent(parent: int) -> None:
    while True:
        _exit_if_orphaned(parent)
        time.sleep(WATCH_SECONDS)


def _exit_if_orphaned(parent: int) -> None:
    if os.getppid() != parent:  # re-parented: the pool's owner is gone, so is anyone wanting our results
        os._exit(1)
