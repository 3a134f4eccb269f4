"""Short-time Fourier analysis as torchaudio's `Spectrogram` does it for riffusion, in numpy.

torchaudio (center=True, pad_mode="reflect", a win_length periodic Hann window zero-padded to n_fft
and centred in the frame) computes column t from samples t*hop - n_fft/2 .. t*hop + n_fft/2 of the
reflect-padded clip, but only the win_length samples under the window are non-zero. The magnitude of
an FFT does not depend on where the non-zero block sits in the frame, so we transform just those
samples (zero-padded to n_fft) and get the same magnitudes, in float32 and in chunks of columns so
memory stays small and proportional to the clip.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.codec import fft
from engine.codec.params import SpectrogramParams

_CHUNK_COLUMNS = 64  # columns per FFT batch: ~4.5 MB of complex64 at n_fft 17640


@lru_cache(maxsize=16)
def hann(length: int) -> np.ndarray:
    """Periodic Hann window (torch.hann_window's default), float32, read-only."""
    n = np.arange(length, dtype=np.float64)
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)).astype(np.float32)
    window.flags.writeable = False
    return window


def windowed_frames(samples: np.ndarray, params: SpectrogramParams) -> np.ndarray:
    """A read-only (columns, win_length) view of the reflect-padded mono clip, one row per column.

    samples: (num_samples,) float32, num_samples >= 1. Row t holds the win_length samples centred on
    sample t * hop (before the window is applied).
    """
    half = params.n_fft // 2
    start = (params.n_fft - params.win_length) // 2  # where torch puts the window inside the frame
    # Reflect is undefined for one sample (torch refuses it); a constant is the only sensible pad.
    padded = np.pad(samples, half, mode="reflect" if samples.shape[0] > 1 else "edge")
    columns = params.num_frames(samples.shape[0])
    view = np.lib.stride_tricks.sliding_window_view(padded[start:], params.win_length)
    return view[: columns * params.hop_length : params.hop_length]


def magnitudes(samples: np.ndarray, params: SpectrogramParams, num_bins: int) -> np.ndarray:
    """|STFT| of a mono clip: (columns, num_bins) float32 for the first `num_bins` FFT bins.

    samples: (num_samples,) float32 in any unit (riffusion uses 16-bit integer scale).
    """
    frames = windowed_frames(samples, params)
    window = hann(params.win_length)
    out = np.empty((frames.shape[0], num_bins), dtype=np.float32)
    for first in range(0, frames.shape[0], _CHUNK_COLUMNS):
        chunk = frames[first : first + _CHUNK_COLUMNS] * window
        spectrum = fft.rfft(chunk, params.n_fft)[:, :num_bins]
        np.abs(spectrum, out=out[first : first + chunk.shape[0]])
    return out
