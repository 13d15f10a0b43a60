"""Training benchmark, side by side in one run: the earlier path (explicit attention, random batches)
against the new one (fused attention, length-bucketed batches), on the paper configuration.

    python benchmarks/bench_train.py                                   # `just bench`: CPU, 1 and 2 threads
    python benchmarks/bench_train.py --device cuda --precision fp32 bf16 fp16
    python benchmarks/bench_train.py --threads 2 --repeats 1 --profile  # and where the time goes

What is timed is a training step as the trainer runs it: forward, multitask loss, backward,
gradient clipping and an Adam step, on `build_model("auxformer", ModelConfig())` (d=130, 10 heads,
5 layers, 4096-dim video) in training mode. The clips have CREMA-D-like lengths: log-normal around
2.5 s, cut to 1.3-5 s, audio at 100 fps and video at 30 fps. Batches of 16 and a pool of 64 clips by
default: `--batch-size 32` is the paper's batch, but the old path's longest batch then needs about
10 GB. Each path makes its batches of the same pool of clips as the trainer would
(`train.batching.epoch_batches`, the pool being one bucket), and a pass trains on every batch once;
clips/s is the pool over a pass's time. Passes alternate between the paths, so load from other
processes hits both alike: compare ratios, not absolute numbers. Peak memory is a step's on the
pool's longest batch, above the model and data: from the CUDA allocator on a GPU, from a fresh
process's peak RSS on the CPU. Imports only torch, numpy and auxformer's training core, so it also
runs where the media packages are not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from machine_info import machine  # beside this script

AUDIO_FPS, VIDEO_FPS, VIDEO_DIM, CLASSES = 100, 30, 4096, 6
MEDIAN_SECONDS, SIGMA, SHORTEST, LONGEST = 2.5, 0.25, 1.3, 5.0
PATHS = {"old": ("explicit", "random"), "new": ("fused", "bucketed")}  # (attention, batching)
LABELS = [f"class{i}" for i in range(CLASSES)]


@dataclass
class Setting:
    device: str
    threads: int
    precision: str


@dataclass
class Measured:
    setting: Setting
    path: str
    pass_seconds: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    clips: int = 0
    padding: float = 0.0  # share of padded frames in the path's batches
    peak_bytes: int | None = None
    skipped: str = ""

    @property
    def clips_per_second(self) -> float:
        return self.clips / statistics.median(self.pass_seconds) if self.pass_seconds else float("nan")

    @property
    def best_clips_per_second(self) -> float:
        return self.clips / min(self.pass_seconds) if self.pass_seconds else float("nan")


def durations(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(np.log(MEDIAN_SECONDS), SIGMA, n), SHORTEST, LONGEST)


def make_clips(n: int, seed: int = 0) -> list:
    from auxformer.runtime.contracts import ClipFeatures

    rng = np.random.default_rng(seed + 1)
    clips = []
    for i, seconds in enumerate(durations(n, seed)):
        ta, tv = round(seconds * AUDIO_FPS), round(seconds * VIDEO_FPS)
        clips.append(
            ClipFeatures(
                clip_id=f"clip{i:04d}",
                audio=rng.standard_normal((ta, 130), np.float32),
                audio_mask=np.ones(ta, bool),
                video=rng.standard_normal((tv, VIDEO_DIM), np.float32),
                video_mask=np.ones(tv, bool),
                label=LABELS[i % CLASSES],
            )
        )
    return clips


def path_batches(clips: Sequence, batching: str, batch_size: int, seed: int) -> list[list[int]]:
    """The trainer's batches of this pool (the whole pool one bucket)."""
    import torch

    from auxformer.train.batching import epoch_batches

    lengths = [len(c.audio_mask) + len(c.video_mask) for c in clips]
    bucket = -(-len(clips) // batch_size)
    return epoch_batches(lengths, batch_size, torch.Generator().manual_seed(seed), batching, bucket)


class TrainPath:
    """One path's model, optimiser and batches: `step(batch)` trains on one batch."""

    def __init__(self, name: str, setting: Setting, batch_size: int, clips: Sequence, seed: int = 0):
        import torch

        from auxformer.train.batching import padding_fraction
        from auxformer.train.config import ModelConfig
        from auxformer.train.data import collate
        from auxformer.train.model import build_model, use_attention
        from auxformer.train.precision import Precision

        attention, batching = PATHS[name]
        self.device = torch.device(setting.device)
        torch.manual_seed(seed)  # both paths start from the same weights
        self.model = use_attention(build_model("auxformer", ModelConfig(num_classes=CLASSES)), attention)
        self.model.to(self.device).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=7.25e-4)
        self.precision = Precision(setting.precision, self.device)
        index = {label: i for i, label in enumerate(LABELS)}
        ids = path_batches(clips, batching, batch_size, seed)
        self.batches = [collate([clips[i] for i in batch], index) for batch in ids]
        self.clips = sum(len(b.labels) for b in self.batches)
        self.padding = padding_fraction(ids, [len(c.audio_mask) for c in clips])

    def step(self, batch) -> None:
        from auxformer.train.loss import multitask_loss

        batch = batch.to(self.device)
        with self.precision.autocast():
            out = self.model(*batch.inputs())
            loss = multitask_loss(self.model, out.heads, batch, {"av": 1 / 3, "audio": 1 / 3, "video": 1 / 3})
        self.precision.step(loss, self.optimizer, self.model.parameters(), 0.8)

    def sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def train_pass(self) -> tuple[float, list[float]]:
        steps = []
        t_pass = time.perf_counter()
        for batch in self.batches:
            t0 = time.perf_counter()
            self.step(batch)
            self.sync()
            steps.append(time.perf_counter() - t0)
        return time.perf_counter() - t_pass, steps

    def longest(self):
        return max(self.batches, key=lambda b: b.audio.shape[1])


def measure(setting: Setting, clips: Sequence, batch_size: int, repeats: int, log) -> list[Measured]:
    import torch

    from auxformer.train.precision import PrecisionError

    results = {name: Measured(setting, name) for name in PATHS}
    try:
        paths = {name: TrainPath(name, setting, batch_size, clips) for name in PATHS}
    except PrecisionError as err:
        for r in results.values():
            r.skipped = str(err).split(":")[0]
        return list(results.values())
    if setting.device == "cpu":
        torch.set_num_threads(setting.threads)
    for name, path in paths.items():  # warm-up: allocator and kernels sized for the longest batch
        path.step(path.longest())
        path.sync()
        results[name].clips, results[name].padding = path.clips, path.padding
    for repeat in range(repeats):
        for name, path in paths.items():  # interleaved: drifting load hits both paths alike
            seconds, steps = path.train_pass()
            results[name].pass_seconds.append(seconds)
            results[name].step_seconds += steps
            log(f"{label(setting)} pass {repeat + 1}/{repeats} {name}: {path.clips / seconds:.2f} clips/s")
    for name, path in paths.items():
        results[name].peak_bytes = peak_memory(path)
    return list(results.values())


def peak_memory(path: TrainPath) -> int | None:
    """A step's peak memory on the longest batch, above the model, optimiser state and data."""
    import torch

    if path.device.type == "cuda":
        path.sync()
        base = torch.cuda.memory_allocated(path.device)
        torch.cuda.reset_peak_memory_stats(path.device)
        path.step(path.longest())
        path.sync()
        return torch.cuda.max_memory_allocated(path.device) - base
    return None  # the CPU's: from child processes (run)


def _child_peak(path: str, setting: Setting, batch_size: int, pool: int) -> int | None:
    """CPU: peak RSS of a fresh process doing one step of `path` on its longest batch, above its RSS
    before the step (ru_maxrss only grows, so each path needs its own process)."""
    command = [sys.executable, __file__, "--memory-child", path, "--clips", str(pool), "--batch-size", str(batch_size)]
    command += ["--threads", str(setting.threads), "--precision", setting.precision, "--device", "cpu"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True)
        return int(json.loads(done.stdout.strip().splitlines()[-1])["step_peak_bytes"])
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError):
        return None


def memory_child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads[0])
    setting = Setting("cpu", args.threads[0], args.precision[0])
    path = TrainPath(args.memory_child, setting, args.batch_size, make_clips(args.clips))
    longest = path.longest()
    path.batches = []  # only the longest batch stays
    base = _rss_now()
    path.step(longest)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    print(json.dumps({"path": args.memory_child, "step_peak_bytes": max(peak - base, 0)}))


def _rss_now() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def label(s: Setting) -> str:
    where = f"{s.threads} thread{'s' if s.threads > 1 else ''}" if s.device == "cpu" else s.device
    return f"{where} {s.precision}"


def table(results: list[Measured]) -> str:
    """One plain-text table (no rich: the GPU check's machine may lack it)."""
    headers = ["setting", "path", "clips/s", "best", "step ms min", "step ms p50", "padding", "peak MiB", "x old"]
    rows = []
    old = {label(r.setting): r.clips_per_second for r in results if r.path == "old"}
    for r in results:
        if r.skipped:
            rows.append([label(r.setting), r.path, "skipped: " + r.skipped, "", "", "", "", "", ""])
            continue
        peak = "n/a" if r.peak_bytes is None else f"{r.peak_bytes / 2**20:.0f}"
        rows.append(
            [
                label(r.setting),
                f"{r.path} ({'+'.join(PATHS[r.path])})",
                f"{r.clips_per_second:.2f}",
                f"{r.best_clips_per_second:.2f}",
                f"{1e3 * min(r.step_seconds):.0f}",
                f"{1e3 * statistics.median(r.step_seconds):.0f}",
                f"{r.padding:.0%}",
                peak,
                f"{r.clips_per_second / old[label(r.setting)]:.2f}",
            ]
        )
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def profile(setting: Setting, clips: Sequence, batch_size: int, log) -> None:
    """Where a new-path step's time goes: torch's operators by self time, and forward / backward /
    optimiser shares."""
    import torch

    path = TrainPath("new", setting, batch_size, clips)
    batch = sorted(path.batches, key=lambda b: b.audio.shape[1])[len(path.batches) // 2]  # a median batch
    path.step(batch)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if setting.device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        path.step(batch)
        path.sync()
    averages = prof.key_averages()
    total = sum(a.self_cpu_time_total for a in averages) or 1
    top = sorted(averages, key=lambda a: a.self_cpu_time_total, reverse=True)[:12]
    log(
        f"new path, {label(setting)}, batch of {len(batch.labels)} x {batch.audio.shape[1]} audio frames, self time: "
        + ", ".join(f"{a.key} {100 * a.self_cpu_time_total / total:.0f}%" for a in top)
    )
    from auxformer.train.loss import multitask_loss

    b = batch.to(path.device)
    marks = {}
    t0 = time.perf_counter()
    with path.precision.autocast():
        out = path.model(*b.inputs())
        loss = multitask_loss(path.model, out.heads, b, {"av": 1 / 3, "audio": 1 / 3, "video": 1 / 3})
    path.sync()
    marks["forward"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    path.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    path.sync()
    marks["backward"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(path.model.parameters(), 0.8)
    path.optimizer.step()
    path.sync()
    marks["clip + Adam"] = time.perf_counter() - t0
    whole = sum(marks.values())
    log("one step: " + ", ".join(f"{k} {v * 1e3:.0f} ms ({100 * v / whole:.0f}%)" for k, v in marks.items()))


def run(
    device: str, threads: Sequence[int], precisions: Sequence[str], clips: int, batch_size: int, repeats: int, log
) -> list[Measured]:
    """Every (threads, precision) setting, both paths; the CPU's peak memory from child processes."""
    pool = make_clips(clips)
    results = []
    for precision in precisions:
        for n in threads if device == "cpu" else [0]:
            setting = Setting(device, n, precision)
            measured = measure(setting, pool, batch_size, repeats, log)
            if device == "cpu":
                for r in measured:
                    if not r.skipped:
                        r.peak_bytes = _child_peak(r.path, setting, batch_size, clips)
            results += measured
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU threads (CPU only)")
    parser.add_argument("--precision", nargs="+", default=["fp32"], help="fp32 bf16 fp16 (refused ones are skipped)")
    parser.add_argument("--clips", type=int, default=64, help="clips in the pool (one pass = this many)")
    parser.add_argument("--batch-size", type=int, default=16, help="32 is the paper's; its old path needs ~10 GB")
    parser.add_argument("--repeats", type=int, default=2, help="passes per path")
    parser.add_argument("--profile", action="store_true", help="also print where the new path's time goes")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return

    import torch

    def log(message: str) -> None:
        print(message, flush=True)

    log(f"machine: {machine()}; torch {torch.__version__}")
    if args.device.startswith("cuda"):
        log(f"device: {torch.cuda.get_device_name(torch.device(args.device))}")
    results = run(args.device, args.threads, args.precision, args.clips, args.batch_size, args.repeats, log)
    log(
        f"\nTraining clips/s, paper configuration, batch {args.batch_size}, a pool of {args.clips} CREMA-D-like "
        f"clips ({SHORTEST}-{LONGEST} s), forward + backward + Adam; median of {args.repeats} passes "
        "(best: fastest pass); peak: a step on the longest batch, above model and data"
    )
    log(table(results))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": [asdict(r) for r in results]}, indent=2))
    if args.profile:
        profile(Setting(args.device, args.threads[-1], args.precision[0]), make_clips(args.clips), args.batch_size, log)


if __name__ == "__main__":
    main()
