"""`Session`: an exported AuxFormer (ONNX or TensorRT) that predicts emotions for clips, in batches.

    from auxformer.runtime import Session

    session = Session.load("exports/demo/model.onnx")          # or model.plan (TensorRT)
    for p in session.predict(["a.mp4", "b.wav", clip_features], batch_size=16):
        print(p.clip_id, p.status.value, p.label, p.probabilities, p.present)

Never imports torch. See `predict` for what a clip may be, how batches are formed, and what a
Prediction holds; see the class docstring for thread safety.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .batching import pad_batch
from .bounds import MemoryBudget, ModelShape, gib
from .bucketing import plan_batches
from .clip_inputs import ClipInput, FrontEnd, resolve, settings_for
from .contracts import MODALITIES, ClipFeatures, Status
from .loader import load_runner
from .manifest import Manifest, ManifestError
from .onnxruntime_runner import OnnxRuntimeOptions
from .prediction import Decoder, Prediction, failed
from .runner import BatchError, Runner

if TYPE_CHECKING:
    from .stream.segments import SegmentStream

DEFAULT_BATCH_SIZE = 16
NOTHING_PRESENT = "neither audio nor a face in this clip: nothing to predict from"


class Session:
    """An exported model ready to predict.

    Thread safety: one Session may serve `predict` calls from several threads at once, and each
    call's results are the ones it would get alone. onnxruntime's `InferenceSession.run` is
    thread-safe and runs concurrent calls in parallel; a TensorRT execution context is not, so the
    TensorRT runner runs one batch at a time under a lock (one context, one stream, reused buffers).
    Media files given as paths are decoded one at a time per Session (the extractor is not
    reentrant); for throughput, extract in a process pool (`auxformer-infer` does) and pass features.
    """

    def __init__(self, runner: Runner, features: Any = None, memory: MemoryBudget | None = None):
        self.runner = runner
        self.manifest: Manifest = runner.manifest
        self.shape = ModelShape.of(self.manifest)
        self.memory_limit = (memory or MemoryBudget()).limit()  # bytes one batch may take (estimated)
        self.decoder = Decoder(self.manifest)
        self.front_end = FrontEnd(self.manifest, features)

    @classmethod
    def load(
        cls,
        path: str | Path,
        backend: str = "auto",
        providers: list | None = None,
        device: str = "auto",
        threads: int = 0,
        features: Any = None,
        memory: MemoryBudget | None = None,
    ) -> Session:
        """Open `path` (`.onnx` -> onnxruntime with TensorRT / CUDA / CPU providers as available, in
        that order, unless `providers` says otherwise; `.plan` -> TensorRT, with `model.plan.json` beside it).

        The model's inputs and outputs are checked against its manifest; `features` (the media front
        end's FeatureSettings) are checked against the features the model was trained on. Either
        mismatch raises ManifestError saying why. `threads`: onnxruntime intra-op threads (0: its default).
        `memory`: the most one batch may take (default: MemoryBudget(), half the memory this process may use).
        """
        options = OnnxRuntimeOptions(providers=providers, threads=threads)
        runner = load_runner(path, backend, device, options)
        try:
            session = cls(runner, features, memory)
            if features is not None:
                settings_for(session.manifest, features)
        except BaseException:
            runner.close()  # a TensorRT runner holds a CUDA context and device buffers
            raise
        return session

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.labels)

    @property
    def name(self) -> str:
        return self.runner.name

    def predict(
        self, clips: Iterable[ClipInput], batch_size: int = DEFAULT_BATCH_SIZE, missing: str | None = None
    ) -> list[Prediction]:
        """One Prediction per clip, in the order given.

        A clip is ClipFeatures, a mapping of arrays (`audio`, `video`, optional masks and `clip_id`),
        or a path (a media file, through the media front end, or a `.npz` feature file). Clips are
        sorted by length and cut into batches of at most `batch_size` (within the engine's profile)
        whose estimated memory stays under the session's budget (`bounds.MemoryBudget`), right-padded
        with masks marking the padding; a missing modality is an all-false mask. Masks make each
        clip's result independent of the batch it lands in.

        `missing="audio"` or `"video"` removes that modality from every clip (robustness checks).

        Never raises for bad data from a file: the clip's Prediction has status `failed` (or `empty`
        when neither modality is present) and a reason. A clip too long for the engine's profile, or
        (onnxruntime) whose estimated memory alone exceeds the budget, is failed with the limit in its
        reason and never run; a batch the backend cannot run (out of memory) is retried one clip at a
        time, and the clips that still fail are failed with the error, never the call. Raises
        ManifestError for ClipFeatures or arrays that do not match the model (wrong feature dims), and
        FeatureError for arrays that break the feature contract, since that is the caller's bug.
        """
        if missing not in (None, *MODALITIES):
            raise ValueError(f"missing must be None, 'audio' or 'video', got {missing!r}")
        results: list[Prediction | None] = []
        runnable: list[tuple[int, ClipFeatures]] = []
        extract_s: dict[int, float] = {}  # seconds spent reading / extracting clips given as paths
        for index, item in enumerate(clips):
            t0 = time.perf_counter()
            clip = resolve(item, index, self.front_end, self.manifest.video_dim)
            from_file = isinstance(item, (str, os.PathLike))
            if from_file:
                extract_s[index] = time.perf_counter() - t0
            # ClipFeatures read from a file elsewhere (auxformer-infer's loader) record their source
            prediction = self._refusal(clip, from_file or bool(clip.info.get("source")))
            if prediction is None:
                runnable.append((index, clip))
            results.append(prediction)
        for index, prediction in self._run(runnable, batch_size, missing):
            results[index] = prediction
        for index, seconds in extract_s.items():
            results[index].timing["extract"] = seconds  # type: ignore[union-attr]
        assert all(p is not None for p in results), "every clip gets a Prediction"
        return results  # type: ignore[return-value]

    def stream(
        self,
        source: str | os.PathLike,
        window: float | None = None,
        hop: float | None = None,
        settings: Any = None,
        **options: Any,
    ) -> SegmentStream:
        """Segments over a media file of any length or a live source, lazily, in time order:

            for segment in session.stream("interview.mp4"):               # or "rtsp://...", a FIFO, "-"
                print(segment.start, segment.end, segment.label, segment.present)

        `source`: a file, an `rtsp://` / `http(s)://` / `udp://` URL, a FIFO, `-` (stdin), or a capture
        device with `format=` and `options=` (FFmpeg's, e.g. `format="v4l2"`, `options={"framerate": "25"}`).
        Window k covers [k * hop, k * hop + window) seconds (defaults: `stream.StreamSettings`);
        `settings` is a whole `StreamSettings`, and other keyword arguments set its fields
        (`batch_size`, `min_speech`, `vad=VadSettings(...)`) or the source's (`format`, `options`,
        `live`, `stall_timeout`). Features are computed once per stream; frames without speech are
        masked (voice activity), so a window of silence or noise has no audio present.

        Returns a `SegmentStream`: iterate it; its `stats` say where the compute went.
        Never raises for the media: a window over a corrupt stretch comes back failed, and a source
        that cannot be opened, stalls for `stall_timeout` seconds or drops ends the stream with one
        failed segment saying why. Raises ManifestError when the model's features are not the media
        front end's. Leaving the loop early stops reading the source.
        """
        import dataclasses

        from .stream.segments import StreamSettings, stream_segments
        from .stream.source import SourceOptions

        settings = settings or StreamSettings()
        source_fields = {f.name for f in dataclasses.fields(SourceOptions)}
        source_changes = {k: v for k, v in options.items() if k in source_fields}
        changes = {k: v for k, v in options.items() if k not in source_fields}
        changes |= {k: v for k, v in (("window", window), ("hop", hop)) if v is not None}
        if source_changes:
            changes["source"] = dataclasses.replace(settings.source, **source_changes)
        settings = dataclasses.replace(settings, **changes)
        _ = self.front_end.settings  # fail now, not at the first window, when the front end cannot serve this model
        return stream_segments(self, source, settings)

    def predict_one(self, clip: ClipInput, missing: str | None = None) -> Prediction:
        return self.predict([clip], batch_size=1, missing=missing)[0]

    def _refusal(self, clip: ClipFeatures, from_file: bool) -> Prediction | None:
        """The Prediction of a clip that will not be run (failed, nothing present, too long), or None."""
        source = clip.info.get("source")
        if clip.status is Status.FAILED:
            return failed(clip.clip_id, clip.reason or "feature extraction failed", source)
        try:
            self.manifest.check_features(clip)
        except ManifestError as err:
            if not from_file:
                raise
            return failed(clip.clip_id, str(err), source)
        profile = self.runner.profile
        lengths = {"audio_len": len(clip.audio_mask), "video_len": len(clip.video_mask)}
        reason = self._too_big(**lengths) if profile is None else profile.accepts(**lengths)
        return failed(clip.clip_id, reason, source) if reason else None

    def _too_big(self, audio_len: int, video_len: int) -> str | None:
        """Why a clip alone would take more memory than the budget, or None (runners without a profile)."""
        need = self.shape.batch_bytes(1, audio_len, video_len)
        if need <= self.memory_limit:
            return None
        return (
            f"too long to run: {audio_len} audio and {video_len} video frames need an estimated {gib(need)}, "
            f"over the memory budget of {gib(self.memory_limit)} per batch: cut the clip, or raise the budget "
            "(auxformer-infer --memory-gib, or Session.load(memory=MemoryBudget(...)))"
        )

    def _run(
        self, runnable: list[tuple[int, ClipFeatures]], batch_size: int, missing: str | None
    ) -> Iterable[tuple[int, Prediction]]:
        profile = self.runner.profile
        if profile is not None:
            batch_size = min(batch_size, profile.batch.max)
        present = {i: _present(clip, missing) for i, clip in runnable}
        todo = []
        for i, clip in runnable:
            if any(present[i].values()):
                todo.append((i, clip))
            else:
                reason = "; ".join(r for r in (clip.reason, _removed(missing), NOTHING_PRESENT) if r)
                source = clip.info.get("source")
                yield i, Prediction(clip.clip_id, Status.EMPTY, reason, present=present[i], source=source)
        lengths = [(len(c.audio_mask), len(c.video_mask)) for _, c in todo]
        for batch in plan_batches(lengths, batch_size, self.shape.batch_bytes, self.memory_limit):
            yield from self._run_batch([todo[k] for k in batch], present, missing)

    def _run_batch(
        self, members: list[tuple[int, ClipFeatures]], present: dict[int, dict[str, bool]], missing: str | None
    ) -> list[tuple[int, Prediction]]:
        """Predictions of one batch; a batch the backend cannot run is retried one clip at a time, and a
        clip that fails alone is failed with the backend's error."""
        clips = [c for _, c in members]
        try:
            feeds = pad_batch(clips, missing)
            if self.runner.profile is not None:
                feeds = self.runner.profile.fit(feeds)
            t0 = time.perf_counter()
            outputs = self.runner.run(feeds)
            share = (time.perf_counter() - t0) / len(clips)
        except (BatchError, MemoryError) as err:
            if len(members) > 1:
                return [row for member in members for row in self._run_batch([member], present, missing)]
            i, clip = members[0]
            why = str(err) if isinstance(err, BatchError) else f"out of memory running it ({err})"
            return [(i, failed(clip.clip_id, why, clip.info.get("source")))]
        rows = {name: value[: len(clips)] for name, value in outputs.items()}
        decoded = self.decoder.decode(clips, rows, [present[i] for i, _ in members])
        out = []
        for (i, clip), prediction in zip(members, decoded, strict=True):
            prediction.reason = "; ".join(r for r in (clip.reason, _removed(missing)) if r)
            prediction.timing["infer"] = share
            out.append((i, prediction))
        return out

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _present(clip: ClipFeatures, missing: str | None) -> dict[str, bool]:
    return {m: m != missing and has for m, has in clip.present().items()}


def _removed(missing: str | None) -> str:
    return f"{missing} removed on request" if missing else ""
