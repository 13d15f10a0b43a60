"""SIGTERM and SIGINT as an exception, so a run stopped by `kill` or Ctrl-C unwinds like one that failed:
the extraction thread and its worker pool are stopped, the prediction log is closed on a complete row,
the CSV is written, and the CLI exits with a one-line message instead of a traceback."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """A stop signal arrived. A BaseException, like KeyboardInterrupt, so that no `except Exception` on
    its way (a clip's failure handling, say) takes it for an error of one clip."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within: the first SIGTERM or SIGINT raises Interrupted in the main thread, and the run unwinds
    (the pool stopped, the CSV written). A second one ends the process at once: the clean-up may be
    waiting on a long decode, and nothing is lost by leaving then (every row is already synced to the
    log, the CSV is replaced atomically, the lock dies with the process, the workers follow their
    parent). The previous handlers come back on exit. A signal the process was started ignoring (SIGINT in a shell's
    background job) stays ignored; outside the main thread (where handlers cannot be set) it does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def handler(signum: int, frame: object) -> None:
        nonlocal raised
        if raised:
            os._exit(128 + signum)
        raised = True
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, signal.SIG_DFL if h is None else h)  # None: a handler set outside Python
