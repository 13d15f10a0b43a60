"""No process outlives the pool's owner: kill -9 or SIGTERM of a program running `ordered_map` (as
auxformer-infer and `auxformer-train prepare` do) takes its workers and multiprocessing's resource
tracker with it, whether the pool is driven from the main thread or from a producer thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from auxformer.common.parallel import ordered_map

from .export_support import media_model
from .media_factory import make_clip
from .pool_jobs import crashed, nap

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes through /proc")

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2

# the owner: a pool of `hang` jobs, driven by the main thread or a producer thread, with or without a
# SIGTERM handler that exits cleanly (as a CLI that finishes its output files does)
OWNER = """
import signal, sys, threading
from auxformer.common.parallel import ordered_map
from tests.pool_jobs import crashed, hang

def drive():
    for result in ordered_map(hang, list(range(20)), workers={workers}, crashed=crashed):
        print(result, flush=True)

if {graceful}:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
if {threaded}:
    producer = threading.Thread(target=drive, daemon=True)
    producer.start()
    while producer.is_alive():
        producer.join(0.2)
else:
    drive()
"""


def session_members(sid: int) -> dict[int, str]:
    """Live (not zombie) processes of session `sid`, with their command lines."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        state, _ppid, _pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
        if int(session) == sid and state != "Z":
            members[int(entry.name)] = cmdline
    return members


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def stop_and_check(owner: subprocess.Popen, sig: int, start_timeout: float = 60, resource_tracker: bool = False):
    """Once `owner` (the leader of its own session) has its pool's workers (and, if asked, the resource
    tracker) up, send it `sig`: nothing else of its session may be alive 10 s after it ends."""
    try:
        others = lambda: {p: c for p, c in session_members(owner.pid).items() if p != owner.pid}  # noqa: E731
        started = wait_for(lambda: len(others()) >= WORKERS + 1, timeout=start_timeout)
        assert started, f"the pool did not start: {others()}"
        if resource_tracker:
            assert any("resource_tracker" in c for c in others().values())
        time.sleep(0.5)  # the initializers have run
        owner.send_signal(sig)
        owner.wait(timeout=60)
        assert wait_for(lambda: not others(), timeout=10), f"outlived their owner: {others()}"
    finally:
        owner.kill()
        owner.wait(timeout=30)
        for pid in session_members(owner.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("sig", "threaded", "graceful"),
    [
        (signal.SIGKILL, False, False),
        (signal.SIGKILL, True, False),
        (signal.SIGTERM, False, False),
        (signal.SIGTERM, False, True),
        (signal.SIGTERM, True, True),
    ],
    ids=["kill9", "kill9-producer-thread", "sigterm", "sigterm-handled", "sigterm-handled-producer-thread"],
)
def test_workers_and_resource_tracker_die_with_the_owner(sig, threaded, graceful):
    script = OWNER.format(workers=WORKERS, graceful=graceful, threaded=threaded)
    owner = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL
    )
    stop_and_check(owner, sig, resource_tracker=True)


def test_workers_outlive_the_thread_that_started_them():
    """The kernel's parent-death signal fires when the starting *thread* ends: that is not a death."""
    jobs = list(range(8))
    results = ordered_map(nap, jobs, workers=WORKERS, crashed=crashed)
    first = []
    starter = threading.Thread(target=lambda: first.append(next(results)))
    starter.start()
    starter.join(timeout=60)
    assert first == [0]
    assert list(results) == [x * x for x in jobs[1:]]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill9", "sigterm"])
def test_auxformer_infer_leaves_no_process_behind(tmp_path, sig):
    """The real CLI on media files, stopped while its extraction pool is up (inference is slowed down,
    so the pool waits on it): nothing of its session survives it."""
    clips = tmp_path / "clips"
    for i in range(8):
        make_clip(clips / f"c{i}.mp4", seconds=0.4, size=96, seed=i)
    command = [sys.executable, "-m", "tests.infer_process", str(clips), "--model", str(media_model(tmp_path))]
    command += ["--out", str(tmp_path / "out"), "--no-progress", "--no-cache", "--workers", str(WORKERS)]
    command += ["--batch-size", "1"]
    env = {**os.environ, "AUXFORMER_TEST_PREDICT_DELAY": "3"}
    owner = subprocess.Popen(
        command, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    stop_and_check(owner, sig, start_timeout=120)
