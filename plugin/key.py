"""The key of a loop from its audio: numpy in, numbers out (no I/O).

    estimate = estimate_key(samples, sample_rate)     # KeyEstimate: "C#min", tonic 1, minor, confidence
    estimate.has_key                                   # False for drums, noise: no key to speak of

Method (a pitch-class profile matched against key profiles, as in Krumhansl 1990 and Gómez 2006):
an STFT long enough to resolve a semitone at the bottom of the bass (0.37 s frames), kept to the
pitch range E1..C7; the sustained part of it (a median over time against a median over frequency:
Fitzgerald's harmonic/percussive split, so that drum hits do not count as notes); the spectral
peaks standing 6 dB above the local floor, placed to a fraction of a bin; the tuning (the peaks'
mean deviation from equal temperament, so a detuned loop is read right); each peak's magnitude
** 0.5 added to its pitch class (chroma). The chroma is correlated with the 24 rotations of a
major and a minor key profile; the best is the key.

The confidence is the best key's correlation, scaled down when less than TONAL_FULL of the power
in the pitch range is in tonal peaks (noise and drums have little there); below KEY_CONFIDENCE
there is no key.

Every choice was made on the tuning part of `tests/key_corpus.py` (150 tonal clips, 30 drum/noise
clips, clean and through the codec) and checked once on its held-out part; the full table is
tests/benchmarks/results/key.md. On the tuning part (MIREX score, clean / codec):
- profile: Albrecht-Shanahan 0.882 / 0.889, Krumhansl-Kessler 0.827 / 0.845, Temperley 0.761 / 0.768
  (held out: 0.808 / 0.806 against 0.787 / 0.799 and 0.679 / 0.686);
- the harmonic split costs nothing in key (0.886 without it) and is what keeps drums and noise out:
  without it 20-23% of them get a key, with it none (held out: 35-40% against 5%);
- peaks 6 dB above the floor: 3 dB lets 13-17% of drums/noise through, 9 dB scores 0.867 / 0.879;
  magnitude ** 0.5 against ** 0.33 (0.886) and ** 0.75 (0.870);
- the tonal share: tonal clips 0.31 at their 1st percentile, drums/noise 0.13 at most (toms); the
  confidence: tonal clips 0.48 at their 1st percentile, drums/noise 0.25 at most, hence 0.4.
The plain-STFT chroma (every bin to its nearest pitch class, no peaks, no split, no tuning) with
the same profiles scores 0.74 (tuning) and 0.72 (held out) at best, and always names a key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FRAME_S = 0.37  # 2.7 Hz bins: a semitone at E1 (41 Hz) is 2.4 Hz, at C2 3.9 Hz
LOWEST_MIDI = 28  # E1, the bass guitar's lowest string
HIGHEST_MIDI = 96  # C7: above it harmonics, not notes, carry most of the energy
MEDIAN_FRAMES = 5  # harmonic median over time: 0.46 s at a quarter-frame hop (a drum hit is shorter)
MEDIAN_HZ = 40.0  # percussive/floor median over frequency
PEAK_ABOVE_FLOOR_DB = 6.0  # a tonal peak stands this far above the local floor
COMPRESSION = 0.5  # magnitude ** COMPRESSION per peak: quiet voices count, one loud note does not rule
MAX_ANALYSIS_S = 30.0  # a longer recording is read in its middle 30 s (~0.2 s, ~60 MB at most)

# Key profiles, C major and C minor (tonic first). Krumhansl & Kessler 1982 (probe-tone ratings);
# Temperley 1999 (revised from Kostka-Payne); Albrecht & Shanahan 2013 (pitch-class distributions in
# a corpus of common-practice music).
PROFILES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "krumhansl": ((6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
                  (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)),
    "temperley": ((5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0),
                  (5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0)),
    "albrecht": ((0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081),
                 (0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052)),
}
DEFAULT_PROFILE = "albrecht"
TONAL_FULL = 0.35  # the tonal share from which the correlation alone is the confidence
KEY_CONFIDENCE = 0.4


@dataclass(frozen=True)
class KeyEstimate:
    """What was found. tonic 0-11 (C = 0) and mode "major"/"minor", or both None: no key (unpitched).

    confidence: 0..1; below KEY_CONFIDENCE the material has no key to speak of.
    correlation: the best key profile's correlation with the chroma (-1..1).
    tonal: the share of the analysed spectrum's (compressed) magnitude in tonal peaks, 0..1.
    chroma: (12,) float64, pitch-class weights from C, summing to 1 (zeros when nothing was found).
    """

    tonic: int | None
    mode: str | None
    confidence: float
    correlation: float
    tonal: float
    chroma: np.ndarray

    @property
    def has_key(self) -> bool:
        return self.tonic is not None

    @property
    def name(self) -> str:
        """"Cmaj", "C#min"...: the sample-pack spelling (sharps; "maj"/"min"), or "no key"."""
        if self.tonic is None:
            return "no key"
        return NAMES[self.tonic] + ("min" if self.mode == "minor" else "maj")

    @property
    def root_midi(self) -> int | None:
        """The tonic as a MIDI note in octave 3 (C3 = 48, the ACID chunk's root note), or None."""
        return None if self.tonic is None else 48 + self.tonic

    def to_dict(self) -> dict | None:
        """The sidecar's record: {"name", "tonic", "mode", "confidence"}, or None with no key."""
        if self.tonic is None:
            return None
        return {"name": self.name, "tonic": self.tonic, "mode": self.mode, "confidence": round(self.confidence, 3)}


@dataclass(frozen=True)
class Chroma:
    """A clip's pitch-class profile and how tonal it is (see `chroma`)."""

    weights: np.ndarray  # (12,) float64, from C, summing to 1 (zeros for silence)
    tonal: float  # 0..1
    tuning: float  # semitones the clip sits above A440 equal temperament (-0.5..0.5)


def chroma(samples: np.ndarray, sample_rate: int, *, compression: float = COMPRESSION,
           harmonic: bool = True, peak_db: float = PEAK_ABOVE_FLOOR_DB) -> Chroma:
    """The pitch-class profile of `samples` ((n,) or (n, channels) float, any rate >= 8 kHz).

    harmonic: weight toward sustained content (the harmonic/percussive split); off, every frame counts.
    """
    audio = np.asarray(samples, dtype=np.float64)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    longest = int(MAX_ANALYSIS_S * sample_rate)
    if audio.size > longest:
        start = (audio.size - longest) // 2
        audio = audio[start : start + longest]
    n_fft = 1 << round(math.log2(FRAME_S * sample_rate))
    hop = n_fft // 4
    if audio.size < n_fft // 2 or not np.any(audio):
        return Chroma(np.zeros(12), 0.0, 0.0)
    audio = np.pad(audio, (n_fft // 2, n_fft // 2 + hop))
    count = 1 + (audio.size - n_fft) // hop
    window = np.hanning(n_fft + 1)[:-1]
    low_bin = max(1, math.floor(_hz(LOWEST_MIDI - 1) * n_fft / sample_rate))
    high_bin = min(n_fft // 2, math.ceil(_hz(HIGHEST_MIDI + 1) * n_fft / sample_rate))
    spread = max(1, round(MEDIAN_HZ * n_fft / sample_rate / 2))
    first, last = low_bin - spread - 1, high_bin + spread + 2  # bins kept, with room for the medians
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop][:count]
    spectrum = np.empty((count, last - first))
    for start in range(0, count, 64):  # blocks bound the memory of long files
        block = np.fft.rfft(frames[start : start + 64] * window, axis=1)
        spectrum[start : start + 64] = np.abs(block[:, first:last])
    raw = spectrum
    floor = _median(spectrum, 2 * spread + 1, axis=1)  # the local floor (and the percussive estimate)
    if harmonic:
        sustained = _median(spectrum, MEDIAN_FRAMES, axis=0)
        mask = sustained**2 / np.maximum(sustained**2 + floor**2, 1e-30)
        spectrum = spectrum * mask
    # Peaks: local maxima standing peak_db above the floor, inside the pitch range.
    centre = spectrum[:, 1:-1]
    above = centre > floor[:, 1:-1] * 10 ** (peak_db / 20)
    is_peak = (centre > spectrum[:, :-2]) & (centre >= spectrum[:, 2:]) & above
    bins = np.arange(first + 1, last - 1)
    is_peak &= ((bins >= low_bin) & (bins <= high_bin))[None, :]
    frame_index, column = np.nonzero(is_peak)
    # How tonal: the power within 2 bins (the Hann main lobe) of the tonal peaks, over all the power in range.
    in_range = (bins >= low_bin) & (bins <= high_bin)
    total = float(np.sum(raw[:, 1:-1][:, in_range] ** 2))
    if frame_index.size == 0 or total <= 0:
        return Chroma(np.zeros(12), 0.0, 0.0)
    padded = np.pad(is_peak, ((0, 0), (2, 2)))
    lobes = np.zeros_like(is_peak)
    for shift in range(5):
        lobes |= padded[:, shift : shift + is_peak.shape[1]]
    tonal = float(np.sum(raw[:, 1:-1][lobes] ** 2) / total)
    left, middle, right = (np.log(np.maximum(spectrum[frame_index, column + k], 1e-30)) for k in (0, 1, 2))
    curvature = left - 2 * middle + right
    delta = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0), 0.0)
    frequency = (bins[column] + np.clip(delta, -0.5, 0.5)) * sample_rate / n_fft
    midi = 69 + 12 * np.log2(frequency / 440.0)
    weight = spectrum[frame_index, column + 1] ** compression
    deviation = midi - np.round(midi)
    tuning = float(np.angle(np.sum(weight * np.exp(2j * np.pi * deviation))) / (2 * np.pi))
    midi = midi - tuning
    nearest = np.round(midi)
    weight = weight * np.cos(np.pi * (midi - nearest)) ** 2  # a peak between two semitones counts little
    keep = (nearest >= LOWEST_MIDI) & (nearest <= HIGHEST_MIDI)
    weights = np.bincount(nearest[keep].astype(int) % 12, weight[keep], minlength=12)
    return Chroma(weights / max(weights.sum(), 1e-30), tonal, tuning)


def key_scores(weights: np.ndarray, profile: str = DEFAULT_PROFILE) -> np.ndarray:
    """(2, 12) correlation of a chroma with each key: row 0 major, row 1 minor, column = tonic."""
    major, minor = (np.asarray(p, dtype=np.float64) for p in PROFILES[profile])
    scores = np.zeros((2, 12))
    centred = np.asarray(weights, dtype=np.float64) - np.mean(weights)
    if not np.any(centred):
        return scores
    for row, template in enumerate((major, minor)):
        rotations = np.stack([np.roll(template, tonic) for tonic in range(12)])
        rotations = rotations - rotations.mean(axis=1, keepdims=True)
        scores[row] = rotations @ centred / (np.linalg.norm(rotations, axis=1) * np.linalg.norm(centred))
    return scores


def estimate_key(samples: np.ndarray, sample_rate: int, *, profile: str = DEFAULT_PROFILE,
                 threshold: float = KEY_CONFIDENCE) -> KeyEstimate:
    """The key of `samples` ((n,) or (n, channels) float at `sample_rate`), or no key (see the module)."""
    found = chroma(samples, sample_rate)
    scores = key_scores(found.weights, profile)
    row, tonic = np.unravel_index(int(np.argmax(scores)), scores.shape)
    best = float(scores[row, tonic])
    confidence = key_confidence(found.tonal, best)
    if confidence < threshold:
        return KeyEstimate(None, None, confidence, best, found.tonal, found.weights)
    return KeyEstimate(int(tonic), ("major", "minor")[row], confidence, best, found.tonal, found.weights)


def key_confidence(tonal: float, best: float) -> float:
    """0..1: the best key's correlation, scaled down when under TONAL_FULL of the power is in tonal peaks."""
    return float(np.clip(min(1.0, tonal / TONAL_FULL) * max(best, 0.0), 0.0, 1.0))


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _median(values: np.ndarray, width: int, axis: int) -> np.ndarray:
    """Running median of odd `width` along `axis` (edges repeated)."""
    half = width // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half, half)
    padded = np.pad(values, pad, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=axis)
    return np.median(windows, axis=-1)
