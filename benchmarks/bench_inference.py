"""Inference benchmark, side by side in one run: PyTorch eager vs onnxruntime (fp32, plus fp16 / int8
ONNX and a TensorRT engine when present) on the paper configuration with 3-second clips.

    python benchmarks/bench_inference.py                      # `just bench`
    python benchmarks/bench_inference.py --batches 1 8 --profile

The model is `build_model("auxformer", ModelConfig(num_classes=6))` (d=130, 10 heads, 5 layers,
VGG-Face 4096-dim video) exported to ONNX in a temporary folder; a 3-second clip is 300 audio frames
(100 fps) and 90 video frames. CPU backends get one intra-op thread each. Repeats alternate between
backends, so load from other processes hits all of them alike: compare ratios, not absolute numbers.
fp16 / int8 ONNX models are made here when the export / calibration packages can make them, or taken
from --onnx-dir; `--engine` adds a TensorRT engine of the same configuration (GPU only).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from machine_info import machine  # beside this script
from rich.console import Console
from rich.table import Table

from auxformer.runtime.contracts import INPUTS

RunBatch = Callable[[dict[str, np.ndarray]], object]
AUDIO_FRAMES, VIDEO_FRAMES, VIDEO_DIM, CLASSES = 300, 90, 4096, 6
REPEATS = {1: 20, 8: 6, 32: 3, 128: 2}  # fewer at large batch: a batch of 128 takes seconds
EAGER = "pytorch eager"
WARM_UP_BELOW = 128


@dataclass
class Result:
    batch: int
    backend: str
    latencies: list[float]  # seconds per call

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q))

    @property
    def clips_per_second(self) -> float:
        return self.batch / self.median


def clip_batch(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "audio": rng.standard_normal((batch, AUDIO_FRAMES, 130), np.float32),
        "audio_mask": np.ones((batch, AUDIO_FRAMES), bool),
        "video": rng.standard_normal((batch, VIDEO_FRAMES, VIDEO_DIM), np.float32),
        "video_mask": np.ones((batch, VIDEO_FRAMES), bool),
    }


def build_and_export(folder: Path, console: Console) -> tuple[object, Path]:
    import torch

    from auxformer.export.onnx_export import export_onnx
    from auxformer.runtime.manifest import FeatureSpec, Manifest, ModelRecord, PredictionSpec
    from auxformer.train.config import ModelConfig
    from auxformer.train.model import build_model

    torch.manual_seed(0)
    model = build_model("auxformer", ModelConfig(num_classes=CLASSES)).eval()
    manifest = Manifest(
        labels=[f"class{i}" for i in range(CLASSES)],
        features=FeatureSpec(audio_dim=130, video_dim=VIDEO_DIM, video_embedder="vggface"),
        model=ModelRecord(model.name, model.cfg.to_dict()),
        heads=list(model.head_modalities),
        prediction=PredictionSpec(model.cfg.prediction, model.head_modalities),
    )
    t0 = time.perf_counter()
    exported = export_onnx(model, manifest, folder / "model.onnx")
    console.print(
        f"exported the paper configuration ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters) "
        f"in {time.perf_counter() - t0:.0f} s: {exported.node_count} nodes, {exported.optimized_node_count} after "
        "onnxruntime's optimisations"
    )
    return model, exported.path


def eager_runner(model: object) -> RunBatch:
    import torch

    def run(feeds: dict[str, np.ndarray]) -> object:
        with torch.inference_mode():
            return model(*(torch.from_numpy(feeds[k]) for k in INPUTS))  # type: ignore[operator]

    return run


def ort_runner(path: Path, device: str = "cpu") -> RunBatch:
    from auxformer.runtime.onnxruntime_runner import OnnxRuntimeOptions, OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, device, OnnxRuntimeOptions(threads=1)).run


def variants(fp32: Path, folder: Path, onnx_dir: Path | None, console: Console) -> dict[str, Path]:
    """fp16 / int8 ONNX files: from --onnx-dir, else made here if this install can make them."""
    found: dict[str, Path] = {}
    for precision in ("fp16", "int8"):
        given = onnx_dir / f"model.{precision}.onnx" if onnx_dir else None
        if given is not None and given.is_file():
            found[precision] = given
            continue
        try:
            found[precision] = _make(precision, fp32, folder / f"model.{precision}.onnx")
        except ImportError as err:
            console.print(f"[dim]no {precision} model: {err.name or err} is not in this install[/dim]")
        except Exception as err:  # a converter failing must not cost the fp32 figures
            console.print(f"[yellow]no {precision} model: {type(err).__name__}: {err}[/yellow]")
    return found


def _make(precision: str, fp32: Path, out: Path) -> Path:
    if precision == "fp16":
        from auxformer.export.fp16 import convert_fp16

        return Path(convert_fp16(fp32, out).path)
    from auxformer.calibration.dataset import CalibrationSet
    from auxformer.calibration.int8 import quantize

    # random 3-second batches: the scales are meaningless for accuracy, not for speed
    calib_dir = out.parent / "calib"
    calib_dir.mkdir(exist_ok=True)
    names = []
    for i in range(2):
        np.savez(calib_dir / f"batch_{i:03d}.npz", **clip_batch(4, seed=100 + i))
        names.append(f"batch_{i:03d}.npz")
    quantize(fp32, CalibrationSet(calib_dir, names, [[f"c{i}"] * 4 for i in range(2)]), out)
    return out


def measure(runners: dict[str, RunBatch], batches: list[int], console: Console) -> list[Result]:
    results = []
    for batch in batches:
        feeds = clip_batch(batch)
        times: dict[str, list[float]] = collections.defaultdict(list)
        if batch < WARM_UP_BELOW:  # allocators and caches sized for this batch; at 128 a call takes
            for run in runners.values():  # seconds, so the first allocation is noise and a warm-up a minute
                run(feeds)
        for _ in range(REPEATS.get(batch, 2)):
            for name, run in runners.items():  # interleaved: drifting load hits every backend alike
                t0 = time.perf_counter()
                run(feeds)
                times[name].append(time.perf_counter() - t0)
        for name in runners:
            results.append(Result(batch, name, times[name]))
        console.print(f"batch {batch}: done")
    return results


def table(results: list[Result]) -> Table:
    out = Table(title="3-second clips, paper configuration, one thread on CPU")
    for column in ("batch", "backend", "clips/s", "p50 ms", "p95 ms", "min ms", "runs", "x eager"):
        out.add_column(column, justify="left" if column == "backend" else "right")
    eager = {r.batch: r.median for r in results if r.backend == EAGER}
    for r in results:
        ratio = eager[r.batch] / r.median if r.batch in eager else float("nan")
        out.add_row(
            str(r.batch),
            r.backend,
            f"{r.clips_per_second:.2f}",
            f"{1e3 * r.percentile(50):.1f}",
            f"{1e3 * r.percentile(95):.1f}",
            f"{1e3 * min(r.latencies):.1f}",
            str(len(r.latencies)),
            f"{ratio:.2f}",
        )
    return out


def profile(model: object, onnx_path: Path, folder: Path, batches: list[int], console: Console) -> None:
    """Where the time goes: onnxruntime's per-op profile, eager's top operators, and graph optimisation levels."""
    import onnxruntime as ort
    import torch

    for batch in batches:
        feeds = clip_batch(batch)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_profiling = True
        options.profile_file_prefix = str(folder / f"ort_b{batch}")
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        for _ in range(3):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
        by_op: collections.Counter[str] = collections.Counter()
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                by_op[e["args"]["op_name"]] += e["dur"]
        total = sum(by_op.values()) or 1
        top = ", ".join(f"{op} {100 * us / total:.0f}%" for op, us in by_op.most_common(8))
        console.print(f"onnxruntime, batch {batch}, kernel time by op: {top}")

        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            eager_runner(model)(feeds)
        averages = prof.key_averages()
        total_us = sum(a.self_cpu_time_total for a in averages) or 1
        top = sorted(averages, key=lambda a: a.self_cpu_time_total, reverse=True)[:8]
        console.print(
            f"pytorch eager, batch {batch}, self time by op: "
            + ", ".join(f"{a.key} {100 * a.self_cpu_time_total / total_us:.0f}%" for a in top)
        )
        levels = {}
        for level in ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
            session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
            session.run(None, feeds)
            runs = []
            for _ in range(10 if batch == 1 else 3 if batch <= 8 else 1):
                t0 = time.perf_counter()
                session.run(None, feeds)
                runs.append(time.perf_counter() - t0)
            levels[level] = 1e3 * min(runs)
        console.print(
            f"onnxruntime, batch {batch}, ms by graph optimisation level: "
            + ", ".join(f"{k.removeprefix('ORT_')} {v:.0f}" for k, v in levels.items())
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--onnx-dir", type=Path, help="take model.fp16.onnx / model.int8.onnx from here")
    parser.add_argument("--engine", type=Path, help="a TensorRT model.plan of the paper configuration (GPU)")
    parser.add_argument("--no-variants", action="store_true", help="fp32 only: skip fp16 / int8 ONNX")
    parser.add_argument("--profile", action="store_true", help="also print where the time goes")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    console = Console()
    console.print(f"machine: {machine()}; torch {torch.__version__}, onnxruntime {ort.__version__}")
    with tempfile.TemporaryDirectory(prefix="auxformer-bench-") as tmp:
        folder = Path(tmp)
        model, fp32 = build_and_export(folder, console)
        runners: dict[str, RunBatch] = {EAGER: eager_runner(model), "onnxruntime fp32": ort_runner(fp32)}
        if not args.no_variants:
            for precision, path in variants(fp32, folder, args.onnx_dir, console).items():
                runners[f"onnxruntime {precision}"] = ort_runner(path)
        if "CUDAExecutionProvider" in ort.get_available_providers():
            runners["onnxruntime fp32 cuda"] = ort_runner(fp32, device="cuda")
        if args.engine:
            from auxformer.runtime.tensorrt_runner import TensorRTRunner

            runners["tensorrt"] = TensorRTRunner(args.engine).run
        results = measure(runners, args.batches, console)
        console.print(table(results))
        if args.json:
            args.json.write_text(json.dumps({"machine": machine(), "results": [asdict(r) for r in results]}, indent=2))
        if args.profile:
            profile(model, fp32, folder, [b for b in args.batches if b <= 32], console)


if __name__ == "__main__":
    main()
