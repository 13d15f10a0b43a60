"""Voice activity detectors on real speech: how the stream's default (openSMILE's voicing) was chosen.

    python benchmarks/bench_vad.py EMODB_WAV_FOLDER [--clips 30]

Real utterances (e.g. EmoDB's wav files) are joined with 0.5-6 s pauses into one recording, then
mixed with pink noise, mains hum or white noise at 20, 10 and 0 dB SNR (the noise runs through the
pauses too). Truth: a row is speech when the clean signal's frame energy is within 35 dB of its loud
end. Per detector: frame F1, and on 3-s windows every 1 s what the stream decides (audio present
when >= 0.25 s of speech): the share of noise-only windows counted as audio, and of speech windows
missed. `webrtcvad` (from `webrtcvad-wheels`) is measured when it is installed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from auxformer.runtime.contracts import AUDIO_FPS
from auxformer.runtime.media.audio_features import ComParE
from auxformer.runtime.media.decode import decode
from auxformer.runtime.stream.vad import VadSettings, VoiceActivity, dilate

RATE = 16000


def recording(files: list[Path], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    for path in files:
        parts += [np.zeros(int(rng.choice([0.5, 1.0, 4.0, 6.0]) * RATE), np.float32), decode(path).audio]
    speech = np.concatenate(parts)
    hop = int(RATE / AUDIO_FPS)
    n = len(speech) // hop
    energy = np.array([np.sqrt(np.mean(speech[i * hop : i * hop + 400] ** 2) + 1e-12) for i in range(n)])
    db = 20 * np.log10(energy + 1e-9)
    return speech, db > np.percentile(db, 99) - 35


def noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind == "pink":
        spectrum = np.fft.rfft(rng.standard_normal(n))
        x = np.fft.irfft(spectrum / np.sqrt(np.arange(1, len(spectrum) + 1)), n)
    else:  # mains hum with harmonics
        t = np.arange(n) / RATE
        x = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 6)) / k for k in range(1, 8))
    return (x / x.std()).astype(np.float32)


def webrtc(signal: np.ndarray, mode: int, rows: int) -> np.ndarray | None:
    try:
        import webrtcvad
    except ImportError:
        return None
    vad, pcm, step = webrtcvad.Vad(mode), (signal * 32767).astype(np.int16).tobytes(), 480  # 30 ms frames
    frames = [vad.is_speech(pcm[2 * i : 2 * (i + step)], RATE) for i in range(0, len(signal) - step, step)]
    out = np.repeat(np.array(frames, bool), 3)[:rows]
    return dilate(np.pad(out, (0, rows - len(out))), round(0.25 * AUDIO_FPS))


def windows(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    need, length = round(0.25 * AUDIO_FPS), round(3 * AUDIO_FPS)
    pairs = np.array(
        [
            (truth[s : s + length].sum() >= need, pred[s : s + length].sum() >= need)
            for s in range(0, len(truth) - length, round(AUDIO_FPS))
        ]
    )
    noise_only = ~pairs[:, 0]
    return float(pairs[noise_only, 1].mean()), float((~pairs[~noise_only, 1]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a folder of speech recordings (wav)")
    parser.add_argument("--clips", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    files = sorted(args.folder.glob("*.wav"))
    files = files[:: max(1, len(files) // args.clips)][: args.clips]
    speech, truth = recording(files, rng)
    speech_rms = np.sqrt(np.mean(speech[: len(truth) * 160][np.repeat(truth, 160)] ** 2))
    compare = ComParE()
    detectors = {
        "voicing 0.7 (default)": VadSettings("voicing", threshold=0.7),
        "voicing 0.6": VadSettings("voicing", threshold=0.6),
        "energy": VadSettings("energy"),
    }
    scores: dict[str, list[tuple[float, float, float]]] = {}
    for kind in ("pink", "hum", "white"):
        for snr in (20, 10, 0):
            x = speech + noise(kind, len(speech), rng) * speech_rms / 10 ** (snr / 20)
            x = (x / max(1.0, float(np.abs(x).max()) * 1.05)).astype(np.float32)
            rows = compare.rows(x, RATE)
            m = min(len(rows), len(truth))
            fps = 1 / compare.step_seconds
            preds = {name: VoiceActivity(s, compare.names, fps)(x, rows)[:m] for name, s in detectors.items()}
            for mode in (2, 3):
                found = webrtc(x, mode, m)
                if found is not None:
                    preds[f"webrtcvad mode {mode}"] = found
            for name, pred in preds.items():
                t = truth[:m]
                tp = (pred & t).sum()
                precision, recall = tp / max(pred.sum(), 1), tp / max(t.sum(), 1)
                f1 = 2 * precision * recall / max(precision + recall, 1e-9)
                scores.setdefault(name, []).append((f1, *windows(pred, t)))
    table = Table(title=f"voice activity, {len(files)} utterances, {len(speech) / RATE:.0f} s, 9 noise conditions")
    for column in ("detector", "frame F1", "noise-only windows counted as audio", "speech windows missed"):
        table.add_column(column, justify="right")
    for name, rows in scores.items():
        mean = np.mean(rows, axis=0)
        table.add_row(name, f"{mean[0]:.3f}", f"{mean[1]:.3f}", f"{mean[2]:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
