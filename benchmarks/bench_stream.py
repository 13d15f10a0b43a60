"""Timeline benchmark (`Session.stream`), side by side in one run: a 480p recording with the default
front end, as a file and as a live source.

    python benchmarks/bench_stream.py                          # `just bench`: 10 and 30 minutes, 60 s live
    python benchmarks/bench_stream.py --minutes 2 6 --live-seconds 30 --model exports/demo/model.onnx

- speed: seconds of media per second of wall time over the whole file (target: >= 10x real time on
  a 2-core machine), with the compute per stage in CPU seconds (decode: the reader thread; audio,
  video, infer: their worker threads; main: the caller's thread; other: the rest of the process, mostly
  onnxruntime's intra-op threads of the model);
- memory: the streaming process's peak RSS for each length (target: the longest within 10 % of the
  shortest: memory does not grow with the input);
- live latency: a writer feeds the recording into a FIFO at real-time speed (MPEG-TS, packet by packet
  at its timestamp); latency is a segment's arrival minus the wall time its window's end was sent
  (target: <= the hop).

The recording is a 30-s generated talking head (480x480, H.264 + AAC, six emotions) looped by copying
packets, so making a 30-minute file costs seconds. The model is the paper configuration (untrained:
speed does not depend on the weights) exported for the default front end's features, unless --model
names one. Each measurement runs in a fresh process. Other processes on the machine slow all of them
alike: read the figures side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from peak_memory import WRAPPER  # benchmarks/: the peak-RSS-of-a-child wrapper
from rich.console import Console
from rich.table import Table

LABELS = ["anger", "happy", "sad", "neutral", "fear", "disgust"]


def paper_model(folder: Path) -> Path:
    """The paper configuration, exported for the default front end's features (untrained)."""
    from auxformer.export.onnx_export import export_onnx
    from auxformer.runtime.features import FeatureSettings
    from auxformer.runtime.manifest import FeatureSpec, Manifest, ModelRecord, PredictionSpec
    from auxformer.train.config import ModelConfig
    from auxformer.train.model import build_model

    settings = FeatureSettings()
    model = build_model("auxformer", ModelConfig(num_classes=len(LABELS), video_dim=settings.video_dim)).eval()
    spec = settings.feature_spec()
    manifest = Manifest(
        labels=LABELS,
        features=FeatureSpec(
            audio_dim=spec["audio_dim"],
            video_dim=spec["video_dim"],
            video_embedder=spec["video_embedder"],
            settings=settings.to_dict(),
        ),
        model=ModelRecord(model.name, model.cfg.to_dict()),
        heads=list(model.head_modalities),
        prediction=PredictionSpec(model.cfg.prediction, model.head_modalities),
    )
    return export_onnx(model, manifest, folder / "model.onnx").path


def recordings(folder: Path, minutes: list[float]) -> dict[float, Path]:
    from auxformer.train.long_recording import loop_file, write_long_recording

    clip = folder / "clip.mp4"
    write_long_recording(clip, LABELS, 5.0, frame_size=(480, 480))
    return {m: loop_file(clip, folder / f"rec_{m:g}min.mp4", m * 60) for m in minutes}


def child_file(model: str, path: str) -> None:
    from auxformer.runtime import Session

    with Session.load(model) as session:
        stream = session.stream(path)
        t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        segments = sum(1 for _ in stream)
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    stages = stream.stats
    stages["other"] = cpu - sum(stages.values())
    out = {
        "media": stream.media_seconds,
        "wall": wall,
        "cpu": cpu,
        "segments": segments,
        "stages": stages,
        "window": stream.window,
        "hop": stream.hop,
    }
    print(json.dumps(out))


def child_feed(path: str, fifo: str, seconds: float) -> None:
    """Remux the first `seconds` of `path` into `fifo` as MPEG-TS, each packet at its timestamp; prints the
    wall-clock time of media time 0. (A process of its own: PyAV holds the GIL while it opens a FIFO.)"""
    import av

    with av.open(path) as src, av.open(fifo, "w", format="mpegts", options={"flush_packets": "1"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in (src.streams.video[0], src.streams.audio[0])}
        t0 = time.time()
        print(t0, flush=True)
        for packet in src.demux(*[src.streams[i] for i in streams]):
            if packet.dts is None:
                continue
            at = float(packet.dts * packet.time_base)
            if at > seconds:
                break
            time.sleep(max(0.0, t0 + at - time.time()))
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)


def child_live(model: str, path: str, seconds: float) -> None:
    from auxformer.runtime import Session

    with tempfile.TemporaryDirectory() as tmp, Session.load(model) as session:
        fifo = os.path.join(tmp, "live.ts")
        os.mkfifo(fifo)
        cmd = [sys.executable, __file__, "--child", "feed", path, fifo, str(seconds)]
        writer = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        started: list[float] = []
        threading.Thread(target=lambda: started.append(float(writer.stdout.readline())), daemon=True).start()
        stream = session.stream(fifo, live=True)
        latencies = []
        for segment in stream:
            if segment.ok and started:
                latencies.append(time.time() - (started[0] + segment.end))
        writer.wait(timeout=60)
    print(json.dumps({"latencies": latencies, "hop": stream.hop, "window": stream.window}))


def run_child(*args: str) -> dict:
    cmd = [sys.executable, "-c", WRAPPER, sys.executable, __file__, "--child", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wrapped = json.loads(done.stdout)
    if wrapped["rc"] != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr[-2000:]}")
    return json.loads(wrapped["stdout"].strip().splitlines()[-1]) | {"peak_rss": wrapped["peak_rss"]}


def print_files(console: Console, results: dict[float, dict]) -> None:
    first = next(iter(results.values()))
    title = f"Session.stream, 480p, default front end, {first['window']:g}-s windows every {first['hop']:g} s"
    table = Table(title=title, title_justify="left")
    for column in (
        "input",
        "media s",
        "wall s",
        "x real time",
        "CPU s",
        "CPU s / media s",
        "peak RSS MiB",
        "segments",
        "compute by stage",
    ):
        table.add_column(column, justify="right")
    for m, r in results.items():
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items())
        table.add_row(
            f"{m:g} min file",
            f"{r['media']:.0f}",
            f"{r['wall']:.1f}",
            f"{r['media'] / r['wall']:.1f}",
            f"{r['cpu']:.1f}",
            f"{r['cpu'] / r['media']:.3f}",
            f"{r['peak_rss'] / 2**20:.0f}",
            str(r["segments"]),
            stages,
        )
    console.print(table)
    peaks = [r["peak_rss"] for r in results.values()]
    console.print(f"peak memory, longest / shortest input: {max(peaks) / min(peaks):.3f} (target <= 1.10)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 30.0], help="recording lengths")
    parser.add_argument("--live-seconds", type=float, default=60.0, help="media fed live (0: skip)")
    parser.add_argument("--model", type=Path, help="an exported model (default: the paper configuration)")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "file":
            child_file(*rest)
        elif kind == "feed":
            child_feed(rest[0], rest[1], float(rest[2]))
        else:
            child_live(rest[0], rest[1], float(rest[2]))
        return
    console = Console(width=None if sys.stdout.isatty() else 200)  # a log file gets the whole table
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        model = str(args.model or paper_model(folder))
        files = recordings(folder, args.minutes)
        console.print(f"model and recordings ready in {time.perf_counter() - t:.0f} s")
        results = {m: run_child("file", model, str(path)) for m, path in files.items()}
        print_files(console, results)
        live = run_child("live", model, str(files[min(files)]), str(args.live_seconds)) if args.live_seconds else None
    if live:
        lat = sorted(live["latencies"])
        p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float("nan")
        windows = f"{len(lat)} windows of {live['window']:g} s every {live['hop']:g} s"
        console.print(
            f"live latency, window end -> segment ({windows}): median {statistics.median(lat):.2f} s, "
            f"p95 {p95:.2f} s, max {lat[-1]:.2f} s (target <= the hop, {live['hop']:g} s)"
        )
    console.print(f"[dim]{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}: compare side by side[/]")
    if args.json:
        args.json.write_text(json.dumps({"files": results, "live": live}, indent=1))


if __name__ == "__main__":
    main()
