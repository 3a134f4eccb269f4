"""The mel filterbank riffusion uses: torchaudio's `melscale_fbanks(norm=None, mel_scale="htk")`.

Triangular filters with peak 1 (no area normalisation), corners equally spaced on the HTK mel scale
from `min_hz` to `max_hz`, evaluated on a linear frequency grid. The encoder evaluates them on the
full FFT grid (n_fft // 2 + 1 bins, as torchaudio does); the decoder on the smaller grid it
reconstructs phase on. Matrices depend only on the parameters, so they are computed once and cached.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse

from engine.codec.params import SpectrogramParams


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 * log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def filter_corners(params: SpectrogramParams) -> np.ndarray:
    """The num_bins + 2 corner frequencies in Hz, float64: filter m rises from corner m, peaks at
    corner m + 1 and falls to zero at corner m + 2."""
    mels = np.linspace(hz_to_mel(params.min_hz), hz_to_mel(params.max_hz), params.num_bins + 2)
    return mel_to_hz(mels)


def triangles(freqs: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Filter weights (len(freqs), len(corners) - 2), float64, torchaudio's formula."""
    freqs = np.asarray(freqs, dtype=np.float64)[:, None]
    widths = np.diff(corners)
    rising = (freqs - corners[None, :-2]) / widths[None, :-1]
    falling = (corners[None, 2:] - freqs) / widths[None, 1:]
    return np.maximum(0.0, np.minimum(rising, falling))


def analysis_freqs(params: SpectrogramParams) -> np.ndarray:
    """Centre frequencies of the encoder's FFT bins as torchaudio spaces them: linspace(0, sr // 2)."""
    return np.linspace(0.0, params.sample_rate // 2, params.n_fft // 2 + 1)


@lru_cache(maxsize=8)
def analysis_filterbank(params: SpectrogramParams) -> scipy.sparse.csr_matrix:
    """The encoder's filterbank as a sparse (num_bins, used_bins) float32 matrix.

    Only the first `used_bins` FFT bins (up to max_hz) carry weight, so the encoder computes
    magnitudes for those alone; each bin feeds at most two filters, so sparse is ~100x less work
    than the dense (8821, 512) product.
    """
    weights = triangles(analysis_freqs(params), filter_corners(params))
    used = int(np.flatnonzero(weights.any(axis=1))[-1]) + 1
    matrix = scipy.sparse.csr_matrix(weights[:used].T.astype(np.float32))
    matrix.sum_duplicates()
    return matrix


def used_bins(params: SpectrogramParams) -> int:
    """How many leading FFT bins the encoder's filterbank reads (4001 by default: 0..10 kHz)."""
    return analysis_filterbank(params).shape[1]
