"""Front-end cost on CPU for 3-second 480p clips, per stage, on one thread: old and new defaults side by side.

    python benchmarks/bench_features.py                 # `just bench`
    python benchmarks/bench_features.py --pool          # also the process pool over all cores

Clips are the raw-media demo's talking heads (H.264 + AAC mp4), generated once into a temporary
folder. Each stage (decode, audio features, face detection, face embedding) is timed per clip over
several passes, the configurations interleaved; the table shows the median ms per clip, how many
times faster than real time the whole front end runs (by the clock, and by this process's CPU time,
which is what one free core would take when other work shares the machine), and the share of frames
with a face. "old
default" is the front end before the learned detector (Haar + pixels, detecting every 3rd frame);
"new default" is `FeatureSettings()` as it stands, so it follows the defaults.
"""

from __future__ import annotations

import os

# one thread everywhere, set before numpy / OpenCV / onnxruntime start their pools
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
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
    """Seconds per clip and stage, one row per (pass, clip); `face_rate` is each clip's share of frames with a face."""
    rows, rates, cpu = [], [], []
    for _ in range(repeats):
        for path in clips:
            before = dict(extractor.timings)
            t0 = time.process_time()
            clip = extractor(path)
            cpu.append(time.process_time() - t0)
            if clip.status.value != "ok":
                raise RuntimeError(f"{path}: {clip.status.value} ({clip.reason})")
            rows.append([extractor.timings[s] - before[s] for s in STAGES])
            rates.append(clip.info["face_rate"])
    table = np.array(rows)
    return {stage: table[:, i] for i, stage in enumerate(STAGES)} | {
        "total": table.sum(1),
        "face_rate": np.array(rates),
        "cpu": np.array(cpu),
    }


def describe(settings: FeatureSettings) -> str:
    return f"{settings.detector} + {settings.video_embedder}, detect every {settings.detect_every}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4, help="distinct clips (speakers)")
    parser.add_argument("--repeats", type=int, default=5, help="passes over the clips")
    parser.add_argument("--size", type=int, default=480, help="frame side in pixels (480p)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--vggface-weights", help="vgg_face_dag.pth: also time the vggface embedder")
    parser.add_argument("--pool", action="store_true", help="also time the process pool on all cores (new default)")
    args = parser.parse_args()
    require("cv2").setNumThreads(1)
    console = Console()
    # the front end before the learned detector, and today's defaults (whatever FeatureSettings says)
    configs = {
        "old default": FeatureSettings(detector="haar", video_embedder="pixels", detect_every=3, threads=1),
        "new default": FeatureSettings(threads=1),
    }
    if configs["new default"].detect_every != 1:  # what detecting on every frame would cost
        configs["every frame"] = replace(configs["new default"], detect_every=1)
    if args.vggface_weights:
        configs["vggface"] = FeatureSettings(video_embedder="vggface", vggface_weights=args.vggface_weights, threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(Path(tmp), args.clips, args.size, args.fps)
        extractors = {name: FeatureExtractor(settings) for name, settings in configs.items()}
        for extractor in extractors.values():
            extractor(clips[0])  # warm-up: first-call allocations, openSMILE start
        # passes interleaved over the configurations, so a busy machine slows them alike
        times: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, extractor in extractors.items():
                times[name].append(time_stages(extractor, clips, 1))
        merged = {name: {k: np.concatenate([t[k] for t in runs]) for k in runs[0]} for name, runs in times.items()}
        runs = len(next(iter(merged.values()))["total"])
        table = Table(
            title=f"front end per {SECONDS:.0f}-s clip, {args.size}x{args.size} @ {args.fps:g} fps, 1 thread, "
            f"median ms of {runs} runs",
            title_justify="left",
        )
        table.add_column("stage")
        for name, settings in configs.items():
            table.add_column(f"{name}\n{describe(settings)}", justify="right")
        for stage in (*STAGES, "total"):
            cells = [f"{1000 * float(np.median(m[stage])):.1f}" for m in merged.values()]
            table.add_row(stage, *cells, style="bold" if stage == "total" else None)
        table.add_row("x real time", *[f"{SECONDS / float(np.median(m['total'])):.1f}" for m in merged.values()])
        # CPU seconds of this process: what one free core would take, on a machine shared with others
        table.add_row("x real time (CPU)", *[f"{SECONDS / float(np.median(m['cpu'])):.1f}" for m in merged.values()])
        table.add_row("face frames", *[f"{float(np.mean(m['face_rate'])):.1%}" for m in merged.values()])
        console.print(table)
        if args.pool:
            settings = configs["new default"]
            jobs = [(str(p), f"{p.stem}_{i}") for i in range(args.repeats) for p in clips]
            t0 = time.perf_counter()
            for _ in extract_many(jobs, settings, progress=False):
                pass
            wall = time.perf_counter() - t0
            workers = os.cpu_count() or 1
            console.print(
                f"process pool, new default ({workers} workers, start-up included): {len(jobs) / wall:.2f} clips/s, "
                f"{len(jobs) * SECONDS / wall:.1f} s of media per second"
            )


if __name__ == "__main__":
    main()
