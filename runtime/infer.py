"""A folder of clips -> predictions: files are found, features extracted in a process pool (with the
feature cache) while inference runs on the clips already extracted, and every file gets a row.

The producer thread drives the media front end's pool (`extract_pool.extract_many`); the calling
thread gathers ready clips and predicts them as soon as a batch is there (more at once when more are
waiting, so bucketing has clips of similar length to group). `.npz` feature files skip extraction.
Each batch's rows are appended to `predictions.jsonl` as soon as it is predicted (`results.PredictionLog`);
with `resume`, files that already have a row there are skipped.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .clip_inputs import FEATURE_SUFFIXES, load_npz
from .contracts import ClipFeatures
from .inputs import Job
from .manifest import ManifestError
from .out_folder import OutFolder, claim
from .results import CSV, JSONL, OutputError, PredictionLog, RunSummary, json_row, row_path, write_csv
from .session import Session


@dataclass
class InferOptions:
    batch_size: int = 16
    workers: int = 0  # feature extraction processes; 0: one per core
    missing: str | None = None
    cache: bool = True  # use the feature cache (content + settings keyed)
    cache_dir: Path | None = None  # None: the front end's default folder
    window: int = 4  # at most this many batches of ready clips are bucketed together
    resume: bool = False  # keep the rows already in the output folder and predict only the other files


@dataclass
class _Ready:
    job: Job
    clip: ClipFeatures
    extract_s: float
    cached: bool = False


@dataclass
class _Stages:
    extract_wall: float = 0.0  # producer: first request to last clip (overlaps inference)
    extract_sum: float = 0.0  # per-clip extraction seconds, added up over the workers
    wait: float = 0.0  # inference waiting for features
    infer: float = 0.0
    write: float = 0.0  # appending rows to the log
    cached: int = 0
    errors: list[BaseException] = field(default_factory=list)


class _Stopped(Exception):
    """The consumer stopped (it failed or was interrupted): the producer must not wait on it."""


def _put(out: queue.Queue, item: _Ready | None, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            out.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


def _produce(
    jobs: list[Job], session: Session, options: InferOptions, out: queue.Queue, stages: _Stages, stop: threading.Event
) -> None:
    t0 = time.perf_counter()
    try:
        for job in jobs:
            if not job.ok:  # found but unreadable: its row says why
                failed = ClipFeatures.failed(job.clip_id, job.reason or "", session.manifest.video_dim, str(job.path))
                _put(out, _Ready(job, failed, 0.0), stop)
            elif job.path.suffix.lower() in FEATURE_SUFFIXES:
                t = time.perf_counter()
                clip = load_npz(job.path, job.clip_id)
                _put(out, _Ready(job, clip, time.perf_counter() - t), stop)
        media = [j for j in jobs if j.media]
        if media:
            # closing the generator shuts the worker pool down, also when the consumer stops early
            with contextlib.closing(_extract(media, session, options)) as clips:
                for job, clip in zip(media, clips, strict=True):
                    cached = bool(clip.info.get("cached"))
                    seconds = 0.0 if cached else float(clip.info.get("seconds", 0.0))
                    _put(out, _Ready(job, clip, seconds, cached), stop)
    except _Stopped:
        return
    except BaseException as err:  # handed to the consumer, which re-raises it in the calling thread
        stages.errors.append(err)
    finally:
        stages.extract_wall = time.perf_counter() - t0
    with contextlib.suppress(_Stopped):
        _put(out, None, stop)


def _extract(media: list[Job], session: Session, options: InferOptions) -> Iterator[ClipFeatures]:
    from .extract_pool import extract_many  # the media front end: only needed for media files

    cache_dir = None
    if options.cache:
        from .feature_cache import default_cache_dir

        cache_dir = options.cache_dir or default_cache_dir()
    jobs = [(str(j.path), j.clip_id) for j in media]
    return extract_many(jobs, session.front_end.settings, options.workers, cache_dir, progress=False)


def _checked(clip: ClipFeatures, session: Session) -> ClipFeatures:
    """Features from a file that do not fit the model fail that file, not the run."""
    if not clip.status.usable:
        return clip
    try:
        session.manifest.check_features(clip)
    except ManifestError as err:
        return ClipFeatures.failed(clip.clip_id, str(err), session.manifest.video_dim, clip.info.get("source"))
    return clip


def check_front_end(jobs: list[Job], session: Session) -> None:
    """Fail before any work when media files are there but the front end cannot make this model's features."""
    if any(j.media for j in jobs):
        _ = session.front_end.settings  # raises ManifestError saying why


def run(
    session: Session,
    jobs: list[Job],
    out: Path | OutFolder,
    options: InferOptions,
    on_progress: Callable[[str, int], None] | None = None,
) -> RunSummary:
    """Predict every job into `predictions.jsonl` (appended batch by batch) and `predictions.csv` (written
    at the end) in `out`, a folder path (claimed here, see `out_folder.claim`) or an already claimed
    folder; return the summary. However the run ends, the CSV matches the rows written.

    `on_progress(stage, n)` is told of each clip extracted ("extracted") and predicted ("predicted")."""
    check_front_end(jobs, session)
    with contextlib.ExitStack() as stack:
        folder = out if isinstance(out, OutFolder) else stack.enter_context(claim(out, options.resume))
        return _run(session, jobs, folder, options, on_progress or (lambda stage, n: None))


def _run(
    session: Session, jobs: list[Job], folder: OutFolder, options: InferOptions, notify: Callable[[str, int], None]
) -> RunSummary:
    t_start = time.perf_counter()
    stages = _Stages()
    finished = False
    log = PredictionLog(folder.path / JSONL, folder.rows, folder.size)
    try:
        with log:
            todo = [j for j in jobs if row_path(j.path) not in log.done]
            for stage in ("extracted", "predicted"):
                notify(stage, len(jobs) - len(todo))
            _predict(session, todo, options, log, stages, notify)
        finished = True
    finally:
        t_write = time.perf_counter()
        rows = list(log.rows)  # the rows on disk, whatever happened
        order = {row_path(j.path): j.index for j in jobs}
        rows.sort(key=lambda row: order.get(row["path"], len(order)))  # stable: rows of other files last
        if finished:
            write_csv(folder.path, rows, session.labels, session.manifest.heads)
        else:  # stopped (a signal, an error): the CSV still matches the rows kept, if it can be written
            with contextlib.suppress(OutputError):
                write_csv(folder.path, rows, session.labels, session.manifest.heads)
    return RunSummary.build(
        rows,
        backend=session.name,
        seconds=time.perf_counter() - t_start,
        stages={
            "extract (wall, overlapped)": stages.extract_wall,
            "extract (sum over workers)": stages.extract_sum,
            "waiting for features": stages.wait,
            "inference": stages.infer,
            "writing": stages.write + time.perf_counter() - t_write,
        },
        cached=stages.cached,
        files=[folder.path / JSONL, folder.path / CSV],
        resumed=log.earlier,
    )


def _predict(
    session: Session,
    jobs: list[Job],
    options: InferOptions,
    log: PredictionLog,
    stages: _Stages,
    notify: Callable[[str, int], None],
) -> None:
    ready: queue.Queue[_Ready | None] = queue.Queue(maxsize=max(64, 4 * options.window * options.batch_size))
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(jobs, session, options, ready, stages, stop), daemon=True)
    producer.start()
    pending: list[_Ready] = []

    def flush() -> None:
        for item in pending:
            item.clip = _checked(item.clip, session)
        t = time.perf_counter()
        predictions = session.predict([r.clip for r in pending], options.batch_size, options.missing)
        stages.infer += time.perf_counter() - t
        rows = []
        for item, prediction in zip(pending, predictions, strict=True):
            prediction.source = str(item.job.path)
            prediction.timing["extract"] = item.extract_s
            rows.append(json_row(item.job.path, prediction, item.cached))
        t = time.perf_counter()
        log.append(rows)  # durable before the run goes on
        stages.write += time.perf_counter() - t
        notify("predicted", len(pending))
        pending.clear()

    try:
        while True:
            enough = len(pending) >= options.batch_size
            t = time.perf_counter()
            try:
                item = ready.get(block=not enough)
            except queue.Empty:  # a batch is ready and nothing else is: predict now, extraction goes on
                flush()
                continue
            stages.wait += time.perf_counter() - t
            if item is None:
                break
            stages.cached += item.cached
            stages.extract_sum += item.extract_s
            pending.append(item)
            notify("extracted", 1)
            if len(pending) >= options.window * options.batch_size:
                flush()
        if pending:
            flush()
    finally:
        stop.set()  # a failed or interrupted inference must not leave the producer and its pool behind
        producer.join()
    if stages.errors:
        raise stages.errors[0]
