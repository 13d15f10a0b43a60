"""`auxformer-infer` as a process, at a pace a test can interrupt: `python -m tests.infer_process ARGS`
(from the repository root) runs the real CLI with every `Session.predict` call delayed by
$AUXFORMER_TEST_PREDICT_DELAY seconds, so a kill or a signal lands while rows are still being written."""

from __future__ import annotations

import os
import time

from auxformer.runtime.cli import main
from auxformer.runtime.session import Session

DELAY = float(os.environ.get("AUXFORMER_TEST_PREDICT_DELAY", "0"))
_predict = Session.predict


def _slow_predict(self, *args, **kwargs):
    time.sleep(DELAY)
    return _predict(self, *args, **kwargs)


if __name__ == "__main__":
    Session.predict = _slow_predict  # type: ignore[method-assign]
    main()
