"""Make the README's timeline pictures from the demo: a long recording with known emotion changes
(`auxformer.train.long_recording`), the demo model's windows over it, their timeline plot and one
frame of their overlay video.

    just demo                                   # trains and exports exports/demo/model.onnx
    python tools/timeline_images.py exports/demo/model.onnx --out runs/timeline-images

writes there `talk.mp4` (and its ground truth, `talk.truth.json`), `timeline.png`, `overlay.mp4` and
`overlay_frame.png`, prints the windows' accuracy against the ground truth, and with `--docs`
copies the two pictures to docs/images/. The windows are `Session.stream`'s, as
`auxformer-infer talk.mp4 --timeline --window W --hop H` makes them (voice activity included): every
`--hop` seconds, `--window` seconds long.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from auxformer.common import atomic
from auxformer.common.optional import require
from auxformer.runtime import Session
from auxformer.runtime.overlay import write_overlay
from auxformer.runtime.segment import Segment
from auxformer.runtime.timeline_plot import write_timeline_plot
from auxformer.train.long_recording import LongRecording, write_long_recording

EMOTIONS = ["neutral", "happy", "anger", None, "sad", "fear", "disgust"]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "images"


def accuracy(segments: list[Segment], truth: LongRecording) -> float:
    scored = [(s.label, truth.label_at((s.start + s.end) / 2)) for s in segments]
    scored = [(p, t) for p, t in scored if t is not None]
    return sum(p == t for p, t in scored) / max(1, len(scored))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs/timeline-images"))
    parser.add_argument("--seconds-each", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=1.2)
    parser.add_argument("--hop", type=float, default=0.4)
    parser.add_argument("--frame-at", type=float, default=11.72, help="seconds: the overlay frame to show")
    parser.add_argument("--docs", action="store_true", help="copy the pictures to docs/images/")
    args = parser.parse_args()

    truth = write_long_recording(
        args.out / "talk.mp4", EMOTIONS, seconds_each=args.seconds_each, seed=7, frame_size=(480, 360)
    )
    atomic.write_json(args.out / "talk.truth.json", truth.to_dict())
    with Session.load(args.model) as session:
        segments = list(session.stream(truth.path, window=args.window, hop=args.hop))
    print(f"{len(segments)} windows, accuracy against the ground truth {accuracy(segments, truth):.3f}")

    plot = write_timeline_plot(segments, args.out / "timeline.png", title="demo model on a generated recording")
    overlay = write_overlay(truth.path, segments, args.out / "overlay.mp4")
    av, cv2 = require("av"), require("cv2")
    with av.open(str(overlay.path)) as container:
        for frame in container.decode(video=0):
            if frame.time >= args.frame_at:
                _, png = cv2.imencode(".png", frame.to_ndarray(format="bgr24"))
                atomic.write_bytes(args.out / "overlay_frame.png", png.tobytes())
                break
    print(f"wrote {plot}, {overlay.path} ({overlay.frames} frames) and {args.out / 'overlay_frame.png'}")
    if args.docs:
        DOCS.mkdir(parents=True, exist_ok=True)
        for name in ("timeline.png", "overlay_frame.png"):
            shutil.copyfile(args.out / name, DOCS / name)
        print(f"copied to {DOCS}")


if __name__ == "__main__":
    main()
