"""Spectrogram image -> audio: mel amplitudes, a first magnitude and phase, fast Griffin-Lim, resample.

`decode_image` is pure (pixels in, float32 audio out) so the generation pipeline can hand it the
VAE's image directly; file reading and writing live in `image_file` and `audio_io`.

Duration control: the image's columns are spread over exactly `num_samples` output samples (0.5x to
2x the natural length) by changing the synthesis hop, a time stretch that keeps pitch. The hop need
not be a whole number of output samples: phase reconstruction runs at an internal rate where it is
(chosen near 2.5x max_hz, also the cheapest rate to work at), and a rational resample lands on the
output rate; the magnitudes are placed by frequency in Hz, so pitch is untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from engine.codec import fft, pghi
from engine.codec.griffin_lim import Progress, ShouldCancel, SynthesisFrames, griffin_lim, polar
from engine.codec.mel import GridFilterbank, grid_filterbank
from engine.codec.params import DEFAULT_PARAMS, SpectrogramParams
from engine.codec.pixels import channel_levels, looks_stereo, mel_from_levels
from engine.codec.quality import DecodeSettings, PhaseInit, Quality
from engine.codec.resample import resample_by
from engine.errors import InvalidInputError

MIN_STRETCH = 0.5
MAX_STRETCH = 2.0
PEAK = 10.0 ** (-1.0 / 20.0)  # output peak: -1 dBFS of headroom
_NYQUIST_GUARD = 1.25  # internal Nyquist >= 1.25 x max_hz: room for the resampler's transition band
_MAX_RATIO_TERM = 1000  # largest up/down of the internal -> output resampler
_RESAMPLER_CONTEXT = 64  # internal samples of context given to the resampler past each end
_INITIAL_FITS = 4  # multiplicative mel fits that turn a flat spectrum into the first magnitudes


@dataclass(frozen=True)
class SynthesisPlan:
    """Where phase reconstruction runs: an internal rate at which the hop is whole samples.

    sample_rate: internal rate in Hz (may be fractional); hop, window, n_fft: in internal samples;
    the output is resample_by(internal, up, down).
    """

    sample_rate: float
    hop: int
    window: int
    n_fft: int
    up: int
    down: int


def natural_length(columns: int, params: SpectrogramParams = DEFAULT_PARAMS) -> int:
    """Samples an image of `columns` decodes to without stretching: (columns - 1) * hop.

    (Our encoder maps those samples back to exactly `columns` columns.)
    """
    return (columns - 1) * params.hop_length


def plan_synthesis(params: SpectrogramParams, columns: int, num_samples: int) -> SynthesisPlan:
    """The internal grid for decoding `columns` columns into `num_samples` output samples."""
    spacing = Fraction(num_samples, columns - 1)  # output samples between column centres
    min_rate = min(2.0 * _NYQUIST_GUARD * params.max_hz, float(params.sample_rate))
    lowest = max(2, math.ceil(float(spacing) * min_rate / params.sample_rate))
    best: tuple[int, int] | None = None
    for hop in range(lowest, lowest + max(8, lowest // 6)):
        ratio = spacing / hop  # output samples per internal sample
        cost = max(ratio.numerator, ratio.denominator)
        if best is None or cost < best[0]:
            best = (cost, hop)
    assert best is not None
    hop = best[1]
    ratio = spacing / hop
    if max(ratio.numerator, ratio.denominator) > _MAX_RATIO_TERM:
        ratio = ratio.limit_denominator(_MAX_RATIO_TERM)  # off by < 1e-6: inaudible, length is trimmed
    internal_rate = params.sample_rate / float(spacing / hop)
    window = 2 * round(params.win_length * hop / float(spacing) / 2)
    return SynthesisPlan(sample_rate=internal_rate, hop=hop, window=window,
                         n_fft=fft.next_fast_len(window),
                         up=ratio.numerator, down=ratio.denominator)


def decode_image(image: np.ndarray, params: SpectrogramParams = DEFAULT_PARAMS, *,
                 quality: Quality | str | DecodeSettings = Quality.STANDARD, num_samples: int | None = None,
                 stereo: bool | None = None, progress: Progress | None = None,
                 should_cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """Audio from a spectrogram image.

    image: uint8 (num_bins, columns) or (num_bins, columns, 1 | 3 | 4), row 0 = highest frequency,
      as riffusion saves it or the VAE paints it; columns >= 2.
    quality: a level name or explicit `DecodeSettings`.
    num_samples: output length; default `natural_length(columns)`; 0.5x..2x of it stretches time.
    stereo: None = detect (riffusion's stereo layout: R = 0, G = left, B = right); True / False force.
    progress(done, total): after each unit of work; should_cancel(): polled between iterations, a True
      raises CancelledError.
    Returns (num_samples, channels) float32, channels 1 or 2, peak at -1 dBFS (silence for a white
    image), never NaN.
    """
    image = np.asarray(image)
    if image.ndim < 2 or image.shape[0] != params.num_bins:
        height = image.shape[0] if image.ndim >= 1 else 0
        raise InvalidInputError(f"the image is {height} pixels high; a spectrogram image must be "
                                f"{params.num_bins} high")
    stereo = looks_stereo(image) if stereo is None else stereo
    mel = mel_from_levels(channel_levels(image, stereo), params.power)
    return decode_mel(mel, params, quality=quality, num_samples=num_samples, progress=progress,
                      should_cancel=should_cancel)


def decode_mel(mel: np.ndarray, params: SpectrogramParams = DEFAULT_PARAMS, *,
               quality: Quality | str | DecodeSettings = Quality.STANDARD, num_samples: int | None = None,
               progress: Progress | None = None, should_cancel: ShouldCancel | None = None) -> np.ndarray:
    """Audio from mel amplitudes (channels, num_bins, columns) float32, row 0 = lowest bin.

    Same contract as `decode_image` (which calls this after converting pixels); the amplitude scale
    does not matter, the output is normalised.
    """
    settings = quality if isinstance(quality, DecodeSettings) else Quality.parse(quality).settings
    if mel.ndim != 3 or mel.shape[0] not in (1, 2) or mel.shape[1] != params.num_bins:
        raise InvalidInputError(f"mel amplitudes of shape {mel.shape} must be (1 or 2 channels, "
                                f"{params.num_bins} bins, columns)")
    channels, _, columns = mel.shape
    if columns < 2:
        raise InvalidInputError(f"the image is {columns} pixel wide; a spectrogram image needs at least 2 "
                                "columns")
    if not np.isfinite(mel).all() or (mel < 0).any():
        raise InvalidInputError("mel amplitudes must be finite and non-negative")
    natural = natural_length(columns, params)
    if num_samples is None:
        num_samples = natural
    if isinstance(num_samples, bool) or not isinstance(num_samples, int | np.integer):
        raise InvalidInputError(f"num_samples={num_samples!r} must be a whole number of samples")
    num_samples = int(num_samples)
    if not MIN_STRETCH * natural <= num_samples <= MAX_STRETCH * natural:
        raise InvalidInputError(
            f"cannot decode {columns} columns to {num_samples} samples: the length must be within "
            f"{MIN_STRETCH:g}x..{MAX_STRETCH:g}x of {natural} ({natural / params.sample_rate:.3f} s)")
    if float(mel.max()) <= 0.0:
        return np.zeros((num_samples, channels), dtype=np.float32)

    plan = plan_synthesis(params, columns, num_samples)
    coarse = _Grid.build(params, plan, columns, plan.n_fft)
    fine = (_Grid.build(params, plan, columns, fft.next_fast_len(2 * plan.window))
            if settings.fine_iterations else None)
    targets = [np.ascontiguousarray(mel[channel], dtype=np.float32) for channel in range(channels)]
    magnitudes = [initial_magnitudes(target, coarse.bank) for target in targets]
    # One shared first phase keeps a stereo pair coherent (no phasiness on centred sources).
    phase = first_phase(sum(magnitudes) / channels, plan, settings.phase_init)
    total = channels * settings.total_iterations
    done = 0

    def report(_: int) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    outputs = []
    for channel in range(channels):
        z = griffin_lim(polar(magnitudes[channel], phase), targets[channel], coarse.bank, coarse.frames,
                        iterations=settings.iterations, momentum=settings.momentum, progress=report,
                        should_cancel=should_cancel)
        if fine is not None:
            z = griffin_lim(fine.frames.analyze(z), targets[channel], fine.bank, fine.frames,
                            iterations=settings.fine_iterations, momentum=settings.momentum, progress=report,
                            should_cancel=should_cancel)
        outputs.append(_to_output_rate(z, plan, num_samples))
    audio = np.stack(outputs, axis=1)
    peak = float(np.max(np.abs(audio)))
    if peak > 0 and math.isfinite(peak):
        audio *= np.float32(PEAK / peak)
    return audio


@dataclass(frozen=True)
class _Grid:
    """A synthesis grid: its framing and its view of the encoder's filterbank."""

    frames: SynthesisFrames
    bank: GridFilterbank

    @classmethod
    def build(cls, params: SpectrogramParams, plan: SynthesisPlan, columns: int, n_fft: int) -> _Grid:
        bank = grid_filterbank(params, plan.sample_rate, n_fft)
        return cls(SynthesisFrames(columns=columns, hop=plan.hop, window=plan.window, n_fft=n_fft,
                                   bins=bank.bins), bank)


def initial_magnitudes(mel: np.ndarray, bank: GridFilterbank) -> np.ndarray:
    """A first linear magnitude estimate (columns, bins) float32 for mel amplitudes (num_bins, columns).

    A few multiplicative fits from a flat spectrum: non-negative, smooth between filter centres, and
    much cheaper than a least-squares inverse (which also needs clamping at zero).
    """
    floor = np.float32(max(float(mel.max()), 1e-30) * 1e-9)
    magnitudes = np.ones((mel.shape[1], bank.bins), dtype=np.float32)
    for _ in range(_INITIAL_FITS):
        magnitudes = bank.match(magnitudes, mel, floor)
    return magnitudes


def first_phase(magnitudes: np.ndarray, plan: SynthesisPlan, method: PhaseInit) -> np.ndarray:
    """The phase Griffin-Lim starts from (columns, bins) float32 (see `pghi`)."""
    build = pghi.spanning_tree_phase if method is PhaseInit.TREE else pghi.frame_recursive_phase
    return build(magnitudes, plan.hop, plan.window, plan.n_fft)


def _to_output_rate(z: np.ndarray, plan: SynthesisPlan, num_samples: int) -> np.ndarray:
    """Cut the output span out of the padded domain and resample it to exactly `num_samples`.

    The resampler's filter reaches ~10 samples past each end; it gets z's (mirrored) context there
    rather than zeros, as many samples as keep the output grid aligned (a multiple of `down`).
    """
    start = plan.window // 2  # centre of the first frame: output sample 0
    lead = min(start, _RESAMPLER_CONTEXT) // plan.down * plan.down
    needed = math.ceil(num_samples * plan.down / plan.up) + _RESAMPLER_CONTEXT
    internal = z[start - lead : start + needed]
    out = resample_by(internal, plan.up, plan.down)[lead * plan.up // plan.down :][:num_samples]
    if out.shape[0] < num_samples:  # only if the padded domain ran out: never by more than a sample
        out = np.pad(out, (0, num_samples - out.shape[0]))
    return out
