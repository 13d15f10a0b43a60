"""Command-line options for feature extraction, and `prepare` (media corpus -> feature corpus).

`auxformer-train prepare` registers `prepare_command`; other commands that extract features (such as
`auxformer-infer` on clips) can reuse the option types and `settings_from_options`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from auxformer.runtime.features import FeatureSettings
from auxformer.runtime.media.functionals import FEATURE_SETS

from .prepare import DEFAULT_FUNCTIONALS

EmbedderOption = Annotated[str, typer.Option(help="video embedder: expression | pixels | vggface")]
WeightsOption = Annotated[Path | None, typer.Option(help="vgg_face_dag.pth, for --embedder vggface")]
DetectorOption = Annotated[str, typer.Option(help="face detector: blazeface | haar | ssd")]
SsdOption = Annotated[
    tuple[Path, Path] | None, typer.Option(help="deploy.prototxt and res10 .caffemodel, for --detector ssd")
]
DetectEveryOption = Annotated[int, typer.Option(help="run the face detector on every k-th frame")]
MaxSecondsOption = Annotated[float, typer.Option(help="longer clips fail (or are cut: --long-clips truncate)")]
LongClipsOption = Annotated[str, typer.Option(help="fail | truncate")]
WorkersOption = Annotated[int, typer.Option(help="extraction processes (0 = one per core)")]


def settings_from_options(
    embedder: str = FeatureSettings.video_embedder,
    vggface_weights: Path | None = None,
    detector: str = FeatureSettings.detector,
    ssd_files: tuple[Path, Path] | None = None,
    detect_every: int = 3,
    max_seconds: float = 60.0,
    long_clips: str = "fail",
) -> FeatureSettings:
    try:
        return FeatureSettings(
            video_embedder=embedder,
            vggface_weights=str(vggface_weights) if vggface_weights else None,
            detector=detector,
            ssd_prototxt=str(ssd_files[0]) if ssd_files else None,
            ssd_model=str(ssd_files[1]) if ssd_files else None,
            detect_every=detect_every,
            max_seconds=max_seconds,
            long_clips=long_clips,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err


def functional_sets(value: str) -> tuple[str, ...]:
    """`--functionals`: a comma-separated list of sets, or none."""
    from auxformer.runtime.media.functionals import check_sets

    if value.strip().lower() in ("", "none"):
        return ()
    try:
        return check_sets([v.strip() for v in value.split(",") if v.strip()])
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--functionals") from err


def prepare_command(
    source: Annotated[
        Path,
        typer.Argument(
            help="CREMA-D, MSP-IMPROV or EmoDB folder, label folders (<label>/*.mp4), or a CSV path,label[,speaker]"
        ),
    ],
    out: Annotated[Path, typer.Option(help="feature corpus folder to write")],
    kind: Annotated[str, typer.Option(help="auto | cremad | msp-improv | emodb | folder | csv")] = "auto",
    labels_from: Annotated[
        str | None,
        typer.Option(help="CREMA-D: intended | voice | face | audiovisual; MSP-IMPROV: plurality | consensus"),
    ] = None,
    rule: Annotated[str | None, typer.Option(help="CREMA-D votes: plurality | majority | distribution")] = None,
    split: Annotated[str | None, typer.Option(help="MSP-IMPROV: random | session:N")] = None,
    speaker_pattern: Annotated[
        str | None, typer.Option(help="label folders: regex whose group 1 is the speaker")
    ] = None,
    embedder: EmbedderOption = FeatureSettings.video_embedder,
    vggface_weights: WeightsOption = None,
    detector: DetectorOption = FeatureSettings.detector,
    ssd_files: SsdOption = None,
    detect_every: DetectEveryOption = 3,
    max_seconds: MaxSecondsOption = 60.0,
    long_clips: LongClipsOption = "fail",
    workers: WorkersOption = 0,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", "--cache-dir", help="feature cache folder [default: ~/.cache/auxformer/features]"),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="extract every clip again, caching nothing")] = False,
    limit: Annotated[int | None, typer.Option(help="only the first N clips (a quick look)")] = None,
    functionals: Annotated[
        str,
        typer.Option(help=f"openSMILE functionals for the classical baseline: {' and/or '.join(FEATURE_SETS)} | none"),
    ] = ",".join(DEFAULT_FUNCTIONALS),
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Extract features from a media corpus into a feature corpus (manifest.csv + .npz + corpus.json).

    Every clip gets a status and reason in prepare_report.csv; failed clips are left out."""
    from auxformer.runtime.feature_cache import default_cache_dir

    from .corpora import open_media_corpus
    from .prepare import prepare

    console = Console()
    sets = functional_sets(functionals)
    settings = settings_from_options(
        embedder, vggface_weights, detector, ssd_files, detect_every, max_seconds, long_clips
    )
    try:
        media = open_media_corpus(
            source, kind, labels_from=labels_from, rule=rule, split=split, speaker_pattern=speaker_pattern
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    console.print(f"{media.name}: {len(media)} clips, {len(media.speakers)} speakers, labels {', '.join(media.labels)}")
    cache_dir = None if no_cache else (cache or default_cache_dir())
    try:
        summary = prepare(media, out, settings, workers, cache_dir, progress, console, limit, sets)
    except RuntimeError as err:  # no usable clip at all: the report says why, clip by clip
        console.print(f"[red]{err}[/]")
        raise typer.Exit(1) from err
    for line in summary.lines():
        console.print(line)
