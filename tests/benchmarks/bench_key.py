"""Key detection (`plugin/key.py`) on clips of known key: the tuning part and the held-out part, clean
renders and the codec's round trip, beside a plain-STFT chroma baseline in the same run.

    taskset -c 1 .venv/bin/python tests/benchmarks/bench_key.py     # ~2 min once the corpus is built

The corpus (`tests/key_corpus.py`, cached in .cache/key-corpus) is built first when it is missing
(~10 min on one core). Scores per clip: exact key 1; MIREX 2005's partial credit for a wrong key:
a fifth away in the same mode 0.5, the relative key 0.3, the parallel key 0.2; no key for a tonal
clip scores 0. Unpitched clips (drums, noise) should get no key.

The baseline: librosa is not installed in the project's environment, so the baseline chroma is the
plain one: an STFT (4096 points, 1024 hop), each bin's magnitude added to its nearest pitch class
(55 Hz..5 kHz), correlated with the same profiles; it always names a key (it has no confidence).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import key_corpus  # noqa: E402
from key_corpus import KeyClip  # noqa: E402

from plugin.key import (  # noqa: E402
    DEFAULT_PROFILE,
    KEY_CONFIDENCE,
    PROFILES,
    chroma,
    estimate_key,
    key_confidence,
    key_scores,
)

MODES = ("major", "minor")
Estimator = Callable[[np.ndarray, int], tuple[int | None, str | None]]


def mirex(clip: KeyClip, tonic: int | None, mode: str | None) -> float:
    """MIREX 2005 key score of an answer for a tonal clip."""
    if tonic is None or clip.tonic is None:
        return 0.0
    step = (tonic - clip.tonic) % 12
    if mode == clip.mode:
        return 1.0 if step == 0 else 0.5 if step in (5, 7) else 0.0
    if (clip.mode, step) in (("major", 9), ("minor", 3)):
        return 0.3
    return 0.2 if step == 0 else 0.0


def ours(profile: str = DEFAULT_PROFILE, *, harmonic: bool = True) -> Estimator:
    def estimate(audio: np.ndarray, rate: int) -> tuple[int | None, str | None]:
        if harmonic:
            found = estimate_key(audio, rate, profile=profile)
            return found.tonic, found.mode
        profile_chroma = chroma(audio, rate, harmonic=False)
        scores = key_scores(profile_chroma.weights, profile)
        row, tonic = np.unravel_index(int(np.argmax(scores)), scores.shape)
        if key_confidence(profile_chroma.tonal, float(scores.max())) < KEY_CONFIDENCE:
            return None, None
        return int(tonic), MODES[row]
    return estimate


def plain_chroma(audio: np.ndarray, rate: int) -> np.ndarray:
    """The baseline's chroma: STFT magnitudes binned to the nearest pitch class (55 Hz..5 kHz)."""
    n_fft, hop = 4096, 1024
    audio = np.asarray(audio, dtype=np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)).sum(axis=0)
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    use = (freqs >= 55) & (freqs <= 5000)
    classes = np.round(69 + 12 * np.log2(freqs[use] / 440)).astype(int) % 12
    return np.bincount(classes, spectrum[use], minlength=12)


def baseline(profile: str = DEFAULT_PROFILE) -> Estimator:
    def estimate(audio: np.ndarray, rate: int) -> tuple[int | None, str | None]:
        scores = key_scores(plain_chroma(audio, rate), profile)
        row, tonic = np.unravel_index(int(np.argmax(scores)), scores.shape)
        return int(tonic), MODES[row]
    return estimate


def rows(profiles: list[str]) -> dict[str, Estimator]:
    out = {f"ours, {DEFAULT_PROFILE} (estimate_key)": ours()}
    out.update({f"ours, {name}": ours(name) for name in profiles if name != DEFAULT_PROFILE})
    out[f"ours without the harmonic split, {DEFAULT_PROFILE}"] = ours(harmonic=False)
    out.update({f"baseline: plain STFT chroma, {name}": baseline(name) for name in profiles})
    return out


def summary(results: list[tuple[KeyClip, int | None, str | None]]) -> dict[str, float]:
    tonal = [(clip, t, m) for clip, t, m in results if clip.tonic is not None]
    atonal = [(clip, t, m) for clip, t, m in results if clip.tonic is None]
    return {"tonal": len(tonal), "exact": np.mean([mirex(c, t, m) == 1.0 for c, t, m in tonal]) if tonal else math.nan,
            "mirex": np.mean([mirex(c, t, m) for c, t, m in tonal]) if tonal else math.nan,
            "no_key": np.mean([t is None for c, t, m in tonal]) if tonal else math.nan,
            "atonal": len(atonal), "given_key": np.mean([t is not None for c, t, m in atonal]) if atonal else math.nan}


def cpu_name() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return f"{fields.get('Model name', '?').strip()} ({fields.get('CPU(s)', '?').strip()} CPUs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=key_corpus.CORPUS)
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "benchmarks" / "results" / "key.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    if not (args.corpus / "manifest.json").is_file():
        key_corpus.build(args.corpus)
    clips = key_corpus.load(args.corpus)
    estimators = rows(list(PROFILES))
    # results[row][(part, kind)] = [(clip, tonic, mode)]
    results: dict[str, dict[tuple[str, str], list]] = defaultdict(lambda: defaultdict(list))
    times: list[float] = []
    for clip in clips:
        part = "held out" if clip.held_out else "tuning"
        for kind, suffix in (("clean", ""), ("codec", ".codec")):
            audio, rate = soundfile.read(args.corpus / f"{clip.name}{suffix}.wav", dtype="float32")
            for name, estimator in estimators.items():
                started = time.perf_counter()
                tonic, mode = estimator(audio, rate)
                if name.endswith("(estimate_key)"):
                    times.append(time.perf_counter() - started)
                results[name][(part, kind)].append((clip, tonic, mode))
    load_after = os.getloadavg()[0]

    lines = ["# Key detection (`plugin/key.py`)", "",
             f"`taskset -c 1 .venv/bin/python tests/benchmarks/bench_key.py` on {cpu_name()}; load average "
             f"{load_before:.2f} before, {load_after:.2f} after. Corpus: `tests/key_corpus.py`, {len(clips)} clips "
             f"of 5.1 s ({sum(c.tonic is not None for c in clips)} tonal in all 24 keys, "
             f"{sum(c.tonic is None for c in clips)} drums/noise); held out = seeds >= {key_corpus.HELD_OUT_FROM}, "
             "never used to choose anything. codec = the clip through `encode_audio` -> `decode_image` (standard).",
             "", f"`estimate_key` takes {1000 * float(np.median(times)):.0f} ms per 5.1 s clip (median).", "",
             "MIREX: exact 1, fifth 0.5, relative 0.3, parallel 0.2, else (or no key) 0. \"no key\": tonal clips "
             "given no key. \"atonal keyed\": drum/noise clips given a key (target <= 0.10).", "",
             "| method | part | audio | tonal clips | exact | MIREX | no key | atonal clips | atonal keyed |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, by_part in results.items():
        for (part, kind), found in sorted(by_part.items(), key=lambda item: (item[0][0] != "tuning", item[0][1])):
            s = summary(found)
            lines.append(f"| {name} | {part} | {kind} | {s['tonal']} | {s['exact']:.3f} | {s['mirex']:.3f} | "
                         f"{s['no_key']:.3f} | {s['atonal']} | {s['given_key']:.3f} |")
    chosen = next(iter(results))
    lines += ["", f"## By instrument group and style: {chosen}", "",
              "MIREX score on tonal clips; for drums/noise, the share given a key. Clips per part in brackets.", "",
              "| group | tuning, clean | tuning, codec | held out, clean | held out, codec |",
              "|---|---:|---:|---:|---:|"]
    for attribute in ("group", "style"):
        for value in sorted({getattr(c, attribute) for c in clips}):
            cells = []
            for part, kind in (("tuning", "clean"), ("tuning", "codec"), ("held out", "clean"), ("held out", "codec")):
                found = [r for r in results[chosen][(part, kind)] if getattr(r[0], attribute) == value]
                s = summary(found)
                if not found:
                    cells.append("-")
                elif s["tonal"]:
                    cells.append(f"{s['mirex']:.2f} ({len(found)})")
                else:
                    cells.append(f"keyed {s['given_key']:.2f} ({len(found)})")
            lines.append(f"| {attribute} {value} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
