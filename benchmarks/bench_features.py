"""Feature-extraction throughput on CPU for 3-second clips, per stage, on one thread.

    python benchmarks/bench_features.py                 # `just bench`
    python benchmarks/bench_features.py --pool          # also the process pool over all cores

Clips are the raw-media demo's talking heads (H.264 + AAC mp4), generated once into a temporary
folder. Each stage (decode, audio features, face detection, face embedding) is timed per clip over
several passes; the table shows the median per clip, its real-time factor (processing seconds per
second of media: below 1 is faster than real time) and its share of the total.
"""

from __future__ import annotations

import os

# one thread everywhere, set before numpy / OpenCV / onnxruntime start their pools
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from auxformer.common.optional import require  # noqa: E402
from auxformer.runtime.extract_pool import extract_many  # noqa: E402
from auxformer.runtime.features import STAGES, FeatureExtractor, FeatureSettings  # noqa: E402
from auxformer.train.media_demo import MediaDemoSpec, plan_clips, render_clip  # noqa: E402

SECONDS = 3.0


def make_clips(folder: Path, count: int, size: int, fps: float) -> list[Path]:
    spec = MediaDemoSpec(
        speakers=count, clips_per_class=1, min_seconds=SECONDS, max_seconds=SECONDS, size=size, fps=fps
    )
    plans = [p for p in plan_clips(spec) if p.label == "happy"]  # one clip per speaker: varied faces
    return [Path(render_clip((p, str(folder), spec))) for p in plans]


def time_stages(extractor: FeatureExtractor, clips: list[Path], repeats: int) -> dict[str, np.ndarray]:
    """Seconds per clip and stage, one row per (pass, clip)."""
    rows = []
    for _ in range(repeats):
        for path in clips:
            before = dict(extractor.timings)
            clip = extractor(path)
            if clip.status.value != "ok":
                raise RuntimeError(f"{path}: {clip.status.value} ({clip.reason})")
            rows.append([extractor.timings[s] - before[s] for s in STAGES])
    table = np.array(rows)
    return {stage: table[:, i] for i, stage in enumerate(STAGES)} | {"total": table.sum(1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4, help="distinct clips (speakers)")
    parser.add_argument("--repeats", type=int, default=5, help="passes over the clips")
    parser.add_argument("--size", type=int, default=360, help="frame side in pixels (CREMA-D is 480x360)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--detect-every", type=int, default=3)
    parser.add_argument("--vggface-weights", help="vgg_face_dag.pth: time the vggface embedder instead of pixels")
    parser.add_argument("--pool", action="store_true", help="also time the process pool on all cores")
    args = parser.parse_args()
    require("cv2").setNumThreads(1)
    console = Console()
    embedder = "vggface" if args.vggface_weights else "pixels"
    settings = FeatureSettings(
        video_embedder=embedder, vggface_weights=args.vggface_weights, detect_every=args.detect_every, threads=1
    )
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(Path(tmp), args.clips, args.size, args.fps)
        extractor = FeatureExtractor(settings)
        extractor(clips[0])  # warm-up: first-call allocations, openSMILE start
        times = time_stages(extractor, clips, args.repeats)
        total = float(np.median(times["total"]))
        table = Table(
            title=f"feature extraction, {SECONDS:.0f} s clips {args.size}x{args.size} @ {args.fps:g} fps, "
            f"1 thread, median of {len(times['total'])} runs ({settings.video_embedder} embedder, "
            f"{settings.detector} detector every {settings.detect_every} frames)",
            title_justify="left",
        )
        for column in ("stage", "ms / clip", "real-time factor", "share", "clips / s"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        for stage in (*STAGES, "total"):
            median = float(np.median(times[stage]))
            table.add_row(
                stage,
                f"{1000 * median:.1f}",
                f"{median / SECONDS:.4f}",
                f"{median / total:.0%}",
                f"{1 / median:.1f}" if median > 0 else "-",
                style="bold" if stage == "total" else None,
            )
        console.print(table)
        console.print(
            f"one thread: {1 / total:.2f} clips/s, real-time factor {total / SECONDS:.3f} "
            f"(min total {1000 * times['total'].min():.0f} ms, max {1000 * times['total'].max():.0f} ms)"
        )
        if args.pool:
            jobs = [(str(p), f"{p.stem}_{i}") for i in range(args.repeats) for p in clips]
            t0 = time.perf_counter()
            for _ in extract_many(jobs, settings, progress=False):
                pass
            wall = time.perf_counter() - t0
            workers = os.cpu_count() or 1
            console.print(
                f"process pool ({workers} workers, start-up included): {len(jobs) / wall:.2f} clips/s, "
                f"{len(jobs) * SECONDS / wall:.1f} s of media per second"
            )


if __name__ == "__main__":
    main()
