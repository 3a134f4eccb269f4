"""The codec's pitch shift (engine/codec/pitch_shift.py): notes move by the ratio asked for, measured by
pitch estimates that share nothing with it; the length is exact; onsets stay put; a loop still wraps."""

from __future__ import annotations

import numpy as np
import pytest

from engine.codec.pitch_shift import shift_pitch
from engine.errors import InvalidInputError

RATE = 44100


def harmonic_tone(f0: float, seconds: float = 3.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))).astype(np.float32)


def fft_pitch(audio: np.ndarray, low: float, high: float, rate: int = RATE) -> float:
    """The strongest peak between low and high Hz of a 2**20-point FFT, refined by a parabola (Hz)."""
    size = 1 << 20
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size), size))
    first, last = int(low * size / rate), int(high * size / rate)
    k = first + int(np.argmax(spectrum[first:last]))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / size


def autocorrelation_pitch(audio: np.ndarray, low: float, high: float, rate: int = RATE) -> float:
    """The fundamental from the autocorrelation's highest peak among lags of low..high Hz (Hz)."""
    x = audio[rate // 2 : -rate // 2].astype(np.float64)
    spectrum = np.fft.rfft(x, 2 * x.size)
    corr = np.fft.irfft(np.abs(spectrum) ** 2)[: x.size]
    first, last = int(rate / high), int(rate / low) + 1
    lag = first + int(np.argmax(corr[first:last]))
    a, b, c = corr[lag - 1 : lag + 2]
    return rate / (lag + 0.5 * (a - c) / (a - 2 * b + c))


def cents(measured: float, expected: float) -> float:
    return 1200 * np.log2(measured / expected)


@pytest.mark.parametrize("semitones", [-6, -5, -1, 2, 6])
def test_a_tone_moves_by_the_ratio_within_a_cent(semitones):
    f0 = 220.0
    shifted = shift_pitch(harmonic_tone(f0), RATE, semitones)
    expected = f0 * 2 ** (semitones / 12)
    assert shifted.shape == (3 * RATE,) and shifted.dtype == np.float32
    assert abs(cents(fft_pitch(shifted, expected / 1.2, expected * 1.2), expected)) < 1.0
    assert abs(cents(fft_pitch(shifted, 2 * expected / 1.1, 2 * expected * 1.1), 2 * expected)) < 1.0  # a harmonic
    assert abs(cents(autocorrelation_pitch(shifted, expected / 1.3, expected * 1.3), expected)) < 5.0


@pytest.mark.parametrize(("f0", "semitones"), [(55.0, -6), (55.0, 6), (41.2, -1)])
def test_a_bass_notes_harmonics_move_together(f0, semitones):
    """Low notes' harmonics sit a few bins apart: each must land on its own note, not on a neighbour's lobe."""
    shifted = shift_pitch(harmonic_tone(f0), RATE, semitones)
    expected = f0 * 2 ** (semitones / 12)
    for harmonic in (1, 2, 3, 4):
        target = harmonic * expected
        assert abs(cents(fft_pitch(shifted, target / 1.1, target * 1.1), target)) < 2.0, harmonic
    assert abs(cents(autocorrelation_pitch(shifted, expected / 1.3, expected * 1.3), expected)) < 2.0


def plucks_and_hats(rate: int = RATE) -> tuple[np.ndarray, np.ndarray]:
    """Two bars at 120 bpm of decaying notes on every 8th, a noise hat on every other: (audio, onset samples)."""
    count = round(4.0 * rate)
    rng = np.random.default_rng(1)
    audio = np.zeros(count, np.float32)
    onsets = np.arange(0, count, rate // 4)
    for index, start in enumerate(onsets):
        f0 = 220 * 2 ** (rng.integers(0, 12) / 12)
        t = np.arange(min(count - start, rate // 4)) / rate
        audio[start : start + t.size] += np.exp(-t * 18) * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 5))
        if index % 2 == 0:
            audio[start : start + 800] += rng.standard_normal(800) * np.exp(-np.arange(800) / 120) * 0.5
    return audio, onsets


def onset_times(audio: np.ndarray, onsets: np.ndarray, rate: int = RATE) -> np.ndarray:
    """Where each note's 1 ms RMS first reaches half its peak, searched around the note's known start (s)."""
    level = np.sqrt(np.convolve(audio.astype(np.float64) ** 2, np.ones(44) / 44, "same"))
    found = []
    for start in onsets:
        first = max(0, start - rate // 30)
        part = level[first : start + rate // 15]
        found.append((first + int(np.argmax(part > 0.5 * part.max()))) / rate)
    return np.array(found)


@pytest.mark.parametrize("semitones", [-6, 5])
def test_onsets_stay_within_two_milliseconds_and_the_length_is_exact(semitones):
    audio, onsets = plucks_and_hats()
    shifted = shift_pitch(audio, RATE, semitones)
    assert shifted.shape == audio.shape
    moved = np.abs(onset_times(shifted, onsets) - onset_times(audio, onsets))
    assert np.max(moved) < 0.002, moved


def seam_click(loop: np.ndarray, width: int = 88) -> float:
    """How much the wrap clicks: the second difference's energy over the 4 ms around the seam (end then start)
    against its median over every 4 ms of the loop, dB (0: the seam is like anywhere else)."""
    wrapped = np.concatenate([loop[-width:], loop[:width]])
    at_seam = np.sum(np.diff(wrapped, 2) ** 2)
    along = np.convolve(np.diff(loop, 2) ** 2, np.ones(2 * width - 2), "valid")
    return float(10 * np.log10(at_seam / np.median(along)))


@pytest.mark.parametrize("semitones", [3, -4, 5, -1])
def test_a_loop_still_wraps(semitones):
    """A loop is shifted as a circle: its seam is like anywhere else in it (within 3 dB), where the same loop
    shifted as a clip (its ends mirrored) clicks 7-27 dB at the wrap."""
    tone = harmonic_tone(220.0, 1.0)  # 220 whole periods: a seamless loop
    assert seam_click(tone) < 1.0
    assert seam_click(shift_pitch(tone, RATE, semitones)) < 3.0
    assert seam_click(shift_pitch(tone, RATE, semitones, looped=False)) > 6.0


def test_stereo_keeps_its_channels():
    audio, _ = plucks_and_hats()
    shifted = shift_pitch(np.stack([audio, 0.5 * audio], axis=1), RATE, 3)
    assert shifted.shape == (audio.size, 2)
    ratio = np.sqrt(np.mean(shifted[:, 1] ** 2) / np.mean(shifted[:, 0] ** 2))
    assert ratio == pytest.approx(0.5, abs=0.05)


def test_no_shift_silence_and_out_of_range():
    tone = harmonic_tone(220.0, 1.0)
    assert np.array_equal(shift_pitch(tone, RATE, 0), tone)
    assert not np.any(shift_pitch(np.zeros(RATE, np.float32), RATE, 4))
    with pytest.raises(InvalidInputError, match="12 semitones"):
        shift_pitch(tone, RATE, 13)
