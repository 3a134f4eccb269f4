"""The mel filterbank riffusion uses: torchaudio's `melscale_fbanks(norm=None, mel_scale="htk")`.

Triangular filters with peak 1 (no area normalisation), corners equally spaced on the HTK mel scale
from `min_hz` to `max_hz`, evaluated on a linear frequency grid. The encoder evaluates them on the
full FFT grid (n_fft // 2 + 1 bins, as torchaudio does); the decoder on the smaller grid it
reconstructs phase on. Matrices depend only on the parameters, so they are computed once and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from engine.codec.banded import BandedMatrix
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


def triangle_entries(freqs: np.ndarray, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-zero entries (rows, columns, float64 weights) of `triangles(freqs, corners).T`, the
    (len(corners) - 2, len(freqs)) filterbank, sorted by column.

    Built without the dense matrix (8821 x 512 at the defaults: ~0.2-0.4 s of a cold start, for 0.2%
    non-zero entries). A frequency lies under at most two filters, the one falling from the corner
    at or below it and the one rising from there, so only those two weights are evaluated, with
    torchaudio's formula as `triangles` writes it: the same numbers to the bit.
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    filters = corners.size - 2
    widths = np.diff(corners)
    above = np.searchsorted(corners, freqs, side="right")  # corners[above - 1] <= f < corners[above]
    rows = np.stack([above - 2, above - 1], axis=1).ravel()  # falling, rising; columns stay in order
    cols = np.repeat(np.arange(freqs.size), 2)
    inside = (rows >= 0) & (rows < filters)
    rows, cols = rows[inside], cols[inside]
    at = freqs[cols]
    rising = (at - corners[rows]) / widths[rows]
    falling = (corners[rows + 2] - at) / widths[rows + 1]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    keep = weights > 0
    return rows[keep], cols[keep], weights[keep]


@lru_cache(maxsize=8)
def analysis_filterbank(params: SpectrogramParams) -> BandedMatrix:
    """The encoder's filterbank as a banded (num_bins, used_bins) float32 matrix.

    Only the first `used_bins` FFT bins (up to max_hz) carry weight, so the encoder computes
    magnitudes for those alone; each bin feeds at most two filters, so the band is ~100x less work
    than the dense (8821, 512) product.
    """
    rows, cols, weights = triangle_entries(analysis_freqs(params), filter_corners(params))
    return BandedMatrix.from_entries(rows, cols, weights, (params.num_bins, int(cols.max()) + 1))


def used_bins(params: SpectrogramParams) -> int:
    """How many leading FFT bins the encoder's filterbank reads (4001 by default: 0..10 kHz)."""
    return analysis_filterbank(params).shape[1]


@lru_cache(maxsize=32)
def grid_filterbank(params: SpectrogramParams, sample_rate: float, n_fft: int) -> GridFilterbank:
    """The encoder's filterbank seen from a synthesis grid of `n_fft` bins at `sample_rate`.

    The decoder reconstructs phase on a coarser grid than the encoder's 4x zero-padded FFT (and at
    a lower sample rate). To ask "what would the encoder's mel bins read?" from grid magnitudes, we
    interpolate them linearly onto the encoder's bin frequencies and apply its filterbank: the product
    of two banded matrices, so still banded.
    """
    analysis = analysis_filterbank(params)  # (num_bins, used analysis bins)
    fine = analysis_freqs(params)[: analysis.shape[1]]
    step = sample_rate / n_fft
    size = min(n_fft // 2 + 1, int(np.ceil(fine[-1] / step)) + 2)
    position = fine / step  # fractional grid index of each analysis bin
    left = np.minimum(np.floor(position).astype(np.int64), size - 2)
    frac = position - left
    # analysis @ interp, entry by entry: analysis bin a's weight goes to grid bins left[a] and left[a] + 1.
    rows, bins, weights = analysis.entries()
    weights = weights.astype(np.float64)
    rows, columns = np.repeat(rows, 2), np.stack([left[bins], left[bins] + 1], axis=1).ravel()
    values = np.stack([weights * (1.0 - frac[bins]), weights * frac[bins]], axis=1).ravel()
    used = int(columns[values > 0].max()) + 1  # the silent bins past max_hz go
    keep = columns < used
    matrix = BandedMatrix.from_entries(rows[keep], columns[keep], values[keep], (params.num_bins, used))
    sums = matrix.column_sums()
    sums[sums <= 0] = np.inf  # a bin no filter reads stays silent
    return GridFilterbank(matrix=matrix, column_sums=sums, n_fft=n_fft, sample_rate=sample_rate)


@dataclass(frozen=True, eq=False)
class GridFilterbank:
    """The encoder's mel filterbank on a synthesis grid (see `grid_filterbank`).

    matrix: (num_bins, bins) float32 banded, bins = the grid bins up to max_hz (the rest are silent).
    """

    matrix: BandedMatrix
    column_sums: np.ndarray  # (bins,) float32, > 0 (inf where no filter reads the bin)
    n_fft: int
    sample_rate: float

    @property
    def bins(self) -> int:
        return self.matrix.shape[1]

    def apply(self, magnitudes: np.ndarray) -> np.ndarray:
        """Mel amplitudes (num_bins, columns) float32 of grid magnitudes (columns, bins)."""
        return self.matrix @ np.ascontiguousarray(magnitudes.T)

    def match(self, magnitudes: np.ndarray, mel: np.ndarray, floor: float) -> np.ndarray:
        """Rescale grid magnitudes so their mel amplitudes move to `mel`, keeping their fine structure.

        One multiplicative (Richardson-Lucy) step: each bin is scaled by the filter-weighted mean of
        target / current over the mel bins it feeds. Non-negative by construction, and it leaves detail
        the image cannot see (harmonics inside one wide mel band) where phase reconstruction put it.
        magnitudes: (columns, bins) float32; mel: (num_bins, columns) float32 (the image's layout);
        floor > 0 avoids 0/0. Returns (columns, bins) float32.
        """
        current = self.apply(magnitudes)
        np.maximum(current, floor, out=current)
        np.divide(mel, current, out=current)
        spread = self.matrix.T @ current  # (bins, columns)
        spread *= self._inverse_column_sums
        return magnitudes * spread.T

    @cached_property
    def _inverse_column_sums(self) -> np.ndarray:
        return (1.0 / self.column_sums)[:, None].astype(np.float32)
