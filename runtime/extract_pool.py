"""Feature extraction for many files: a process pool, the feature cache, a progress bar.

    for clip in extract_many([("a.mp4", "a"), ("b.flv", "b")], FeatureSettings(), cache_dir="~/.cache/..."):
        print(clip.clip_id, clip.status, clip.reason)

Clips come back in the order given, each with a status and a reason: a corrupt file, or even one
that crashes its worker process, gives a `failed` clip and the batch goes on. `info["cached"]` is
true for clips answered by the cache.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.console import Console

from auxformer.common.optional import require
from auxformer.common.parallel import default_workers, ordered_map
from auxformer.common.progress import clip_progress

from .contracts import ClipFeatures
from .feature_cache import FeatureCache
from .features import FeatureExtractor, FeatureSettings

Job = tuple[str, str]  # (path, clip_id)

_worker: tuple[FeatureExtractor, FeatureCache | None] | None = None


def _init_worker(settings: dict, cache_dir: str | None, threads: int, functionals: tuple[str, ...] = ()) -> None:
    """Build this process's extractor and cache once; one thread per process (the pool is the parallelism)."""
    global _worker
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    require("cv2").setNumThreads(threads)
    fs = FeatureSettings.from_dict(settings)
    _worker = (FeatureExtractor(fs, functionals), FeatureCache(cache_dir, fs, functionals) if cache_dir else None)


def extract_job(job: Job) -> ClipFeatures:
    path, clip_id = job
    assert _worker is not None, "extract_job runs in a process set up by _init_worker"
    extractor, cache = _worker
    key = cache.key_or_none(path) if cache is not None else None  # hashed once for lookup and store
    if key is not None:
        hit = cache.get(key, path, clip_id)
        if hit is not None:
            return hit
    clip = extractor(path, clip_id)
    clip.info["cached"] = False
    if key is not None:
        cache.put(key, clip)
    return clip


def extract_many(
    jobs: Sequence[Job],
    settings: FeatureSettings | None = None,
    workers: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    console: Console | None = None,
    description: str = "extracting features",
    functionals: tuple[str, ...] = (),
) -> Iterator[ClipFeatures]:
    """Features of every (path, clip_id), in order. workers=0: one per core; 1: in this process.
    `functionals`: openSMILE functional sets to compute too (`clip.functionals`)."""
    settings = settings or FeatureSettings()
    # set-up errors (missing weights, bad detector files) surface here, once, not once per clip;
    # this also converts VGG-Face weights once before the workers start
    # built and dropped: a vggface session is large, the workers build their own
    FeatureExtractor(settings, functionals)
    workers = workers or default_workers(len(jobs))
    initargs = (settings.to_dict(), str(cache_dir) if cache_dir else None, settings.threads, tuple(functionals))

    def crashed(job: Job) -> ClipFeatures:
        reason = "the decoder crashed on this file (its worker process died)"
        return ClipFeatures.failed(job[1], reason, settings.video_dim, job[0])

    counts: Counter[str] = Counter()
    with clip_progress(console, progress) as bar:
        task = bar.add_task(description, total=len(jobs), note="")
        for clip in ordered_map(extract_job, jobs, workers, crashed, _init_worker, initargs):
            counts[clip.status.value] += 1
            counts["cached"] += bool(clip.info.get("cached"))
            bar.update(task, advance=1, note=" ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v))
            yield clip
