"""The codec's pitch shift (`engine/codec/pitch_shift.py`, `--key`): how exactly notes move, how far onsets
move, and whether the key detector hears a transposed clip in the key it was moved to.

    taskset -c 1 .venv/bin/python tests/benchmarks/bench_pitch_shift.py      # ~3 min

- Tones: a five-harmonic tone at 55..880 Hz shifted by -6..+6 semitones; the error in cents of the shifted
  fundamental, by the peak of a 2**20-point FFT and by the autocorrelation (neither shares code with the shift).
- Onsets: two bars of plucks and noise hats on every 8th (tests/test_codec_pitch_shift.py's clip): how far
  each note's onset (1 ms RMS reaching half its peak) moves.
- Seam: how much the wrap of a loop clicks after the shift (tests/test_codec_pitch_shift.py's `seam_click`).
- Cost: time and memory for a 5.1 s and a 16 s stereo loop.
- Keys: General MIDI clips of tests/key_corpus.py (clean, and the codec's round trip: what generated loops
  sound like), each shifted by one of -5..+6 semitones. "as moved": the detector's key of the shifted clip
  is its key of the clip moved by the shift (the shift does what it says); "true": it is the clip's true
  key moved (the shift and the detector together, as `--key` relies on them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from key_corpus import codec_round_trip, key_clip, render_clip  # noqa: E402
from report import RESULTS, machine_line, publish  # noqa: E402
from test_codec_pitch_shift import (  # noqa: E402
    autocorrelation_pitch,
    cents,
    fft_pitch,
    harmonic_tone,
    onset_times,
    plucks_and_hats,
    seam_click,
)

from engine.codec.pitch_shift import shift_pitch  # noqa: E402
from plugin.key import estimate_key  # noqa: E402

RATE = 44100
SHIFTS = (-5, -3, -1, 1, 2, 4, 6, -6, -2, 3, 5, -4)


def tone_rows() -> list[str]:
    rows = ["| f0 (Hz) | shifts | worst error, FFT peak (cents) | worst error, autocorrelation (cents) |",
            "| --- | --- | --- | --- |"]
    for f0 in (55.0, 110.0, 220.0, 440.0, 880.0):
        tone = harmonic_tone(f0, 3.0)
        by_fft, by_lag = [], []
        for semitones in (-6, -1, 1, 6):
            shifted = shift_pitch(tone, RATE, semitones)
            expected = f0 * 2 ** (semitones / 12)
            by_fft.append(abs(cents(fft_pitch(shifted, expected / 1.2, expected * 1.2), expected)))
            by_lag.append(abs(cents(autocorrelation_pitch(shifted, expected / 1.3, expected * 1.3), expected)))
        rows.append(f"| {f0:g} | -6, -1, +1, +6 | {max(by_fft):.2f} | {max(by_lag):.2f} |")
    return rows


def onset_rows() -> list[str]:
    audio, onsets = plucks_and_hats()
    before = onset_times(audio, onsets)
    rows = ["| shift | median onset move (ms) | largest (ms) | time for 4 s (s) |", "| --- | --- | --- | --- |"]
    for semitones in (-6, -3, 2, 5):
        start = time.perf_counter()
        shifted = shift_pitch(audio, RATE, semitones)
        seconds = time.perf_counter() - start
        moved = np.abs(onset_times(shifted, onsets) - before) * 1000
        rows.append(f"| {semitones:+d} | {np.median(moved):.2f} | {moved.max():.2f} | {seconds:.2f} |")
    return rows


def seam_rows() -> list[str]:
    tone = harmonic_tone(220.0, 1.0)
    audio, _ = plucks_and_hats()
    plucks = np.roll(audio, RATE // 8 + 123)  # the seam in the middle of a note
    rows = ["| loop | shift | seam click, shifted as a loop (dB) | shifted as a clip, ends mirrored (dB) | "
            "before the shift (dB) |", "| --- | --- | --- | --- | --- |"]
    for name, loop in (("tone, 220 whole periods", tone), ("plucks and hats", plucks)):
        for semitones in (-4, -1, 3, 5):
            looped, mirrored = (seam_click(shift_pitch(loop, RATE, semitones, looped=flag)) for flag in (True, False))
            rows.append(f"| {name} | {semitones:+d} | {looped:.1f} | {mirrored:.1f} | {seam_click(loop):.1f} |")
    return rows


def cost_rows() -> list[str]:
    import resource

    rows = ["| stereo loop (s) | time (s) | peak memory of the process so far (MB) |", "| --- | --- | --- |"]
    audio, _ = plucks_and_hats()
    for seconds in (5.1, 16.0):
        mono = np.tile(audio, 5)[: round(seconds * RATE)]
        start = time.perf_counter()
        shift_pitch(np.stack([mono, 0.8 * mono], axis=1), RATE, -5)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        rows.append(f"| {seconds:g} | {time.perf_counter() - start:.2f} | {peak} |")
    return rows


def key_rows(count: int) -> tuple[list[str], list[str]]:
    seeds = [seed for seed in range(100, 400) if key_clip(seed).tonic is not None][:count]
    tally = {kind: {"found": 0, "as moved": 0, "true before": 0, "true after": 0, "clips": 0}
             for kind in ("clean", "codec")}
    misses: list[str] = []
    for index, seed in enumerate(seeds):
        clip = key_clip(seed)
        clean = render_clip(clip)
        semitones = SHIFTS[index % len(SHIFTS)]
        for kind, audio in (("clean", clean), ("codec", codec_round_trip(clean))):
            counts = tally[kind]
            counts["clips"] += 1
            before = estimate_key(audio, RATE)
            after = estimate_key(shift_pitch(audio, RATE, semitones, looped=False), RATE)
            minor = clip.mode == "minor"
            counts["true before"] += before.tonic == clip.tonic and (before.mode == "minor") == minor
            counts["true after"] += after.tonic == (clip.tonic + semitones) % 12 and (after.mode == "minor") == minor
            if before.has_key:
                counts["found"] += 1
                moved = before.tonic is not None and after.tonic == (before.tonic + semitones) % 12 \
                    and after.mode == before.mode
                counts["as moved"] += moved
                if not moved:
                    misses.append(f"{clip.name} {clip.group}/{clip.style} {clip.key} ({kind}): {before.name} "
                                  f"{semitones:+d} -> {after.name}")
    rows = ["| audio | clips | key found | shifted clip read as its key moved | true key before | "
            "true key moved, after |", "| --- | --- | --- | --- | --- | --- |"]
    for kind, counts in tally.items():
        rows.append(f"| {kind} | {counts['clips']} | {counts['found']} | {counts['as moved']}/{counts['found']} | "
                    f"{counts['true before']}/{counts['clips']} | {counts['true after']}/{counts['clips']} |")
    return rows, misses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=36)
    parser.add_argument("--out", type=Path, default=RESULTS / "pitch-shift.md")
    args = parser.parse_args()
    keys, misses = key_rows(args.clips)
    lines = ["# The codec's pitch shift (engine/codec/pitch_shift.py)", "", machine_line(), "",
             "## A tone's fundamental after the shift", "", *tone_rows(), "",
             "## Onsets (plucks and hats, 2 bars at 120 bpm)", "", *onset_rows(), "",
             "## The seam (second-difference energy over 4 ms at the wrap against its median along the loop)", "",
             *seam_rows(), "", "## Cost", "", *cost_rows(), "",
             "## The key detector on shifted General MIDI clips (tests/key_corpus.py)", "", *keys, "",
             "Clips not read as their key moved:", "", *(f"- {miss}" for miss in misses or ["none"])]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
