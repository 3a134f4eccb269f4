"""A first phase for Griffin-Lim from the magnitudes alone: the phase-gradient heuristic (PGHI).

For a Gaussian-like window the STFT's log-magnitude s and phase phi are tied (Portnoff; Prusa,
Balazs & Sondergaard 2017, "A noniterative method for reconstruction of phase from STFT magnitude"):
with the phase referred to each frame's centre, x in samples and w in cycles per sample,

    d phi / dx = 2 pi w + (1 / lam) * ds / dw        (instantaneous frequency)
    d phi / dw = -lam * ds / dx                      (group delay)

where lam = 0.25645 * L**2 for a Hann window of L samples. Integrating these gradients gives a phase
that is coherent along ridges of a tone (through time) and across an onset (through frequency), so
Griffin-Lim starts near a good answer instead of from noise: ~4 dB better sc_mel for the same work.

The published algorithm integrates from the loudest bin outwards with a heap, one bin at a time: too
slow in Python. Two vectorised substitutes live here:

- `frame_recursive_phase` (fast): frame by frame, each spectral peak continues its phase through
  time and the bins around it (down to the troughs on either side) integrate across frequency from
  it. About 20 ms for a 5 s clip.
- `spanning_tree_phase` (better, ~0.1-0.2 s): integrates along the maximum spanning tree of the
  magnitude grid, the paths through the loudest bins, which is what the heap order approximates.
  After 8 iterations it is ~3 dB better than the frame-recursive start (drums: ~8 dB).

Shapes: magnitudes (columns, bins) float32 on the grid of an `n_fft`-point FFT; the returned phase
(columns, bins) float32 is in the convention of `rfft` of a frame whose window starts at sample 0.
"""

from __future__ import annotations

import numpy as np

from engine.codec import spanning_forest

HANN_LAMBDA = 0.25645  # lam / L**2 of the Gaussian that best matches a Hann window


def phase_gradients(magnitudes: np.ndarray, hop: int, window: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Phase steps implied by the magnitudes: (per frame along time, per bin along frequency), radians.

    Both (columns, bins) float32, phase referred to frame centres.
    """
    peak = max(float(magnitudes.max()), 1e-30)
    log = np.log(np.maximum(magnitudes, np.float32(peak * 1e-8)), dtype=np.float32)
    lam = HANN_LAMBDA * window * window
    bins = np.arange(log.shape[1], dtype=np.float32)
    along_time = _central_difference(log, axis=1)  # d s / d bin
    along_time *= np.float32(hop * n_fft / lam)
    along_time += np.float32(2.0 * np.pi * hop / n_fft) * bins
    along_freq = _central_difference(log, axis=0)  # d s / d frame
    along_freq *= np.float32(-lam / (n_fft * hop))
    return along_time, along_freq


def _central_difference(values: np.ndarray, axis: int) -> np.ndarray:
    """d values / d index along `axis` (one-sided at the ends, 0 for a single sample), same dtype."""
    values = np.moveaxis(values, axis, 0)
    out = np.zeros_like(values)
    if values.shape[0] > 1:
        np.subtract(values[2:], values[:-2], out=out[1:-1])
        out[1:-1] *= 0.5
        out[0] = values[1] - values[0]
        out[-1] = values[-1] - values[-2]
    return np.moveaxis(out, 0, axis)


def frame_recursive_phase(magnitudes: np.ndarray, hop: int, window: int, n_fft: int) -> np.ndarray:
    """Fast PGHI substitute: peaks carry phase through time, their neighbourhoods through frequency."""
    along_time, along_freq = phase_gradients(magnitudes, hop, window, n_fft)
    owner = peak_owners(magnitudes)
    across = np.zeros(along_freq.shape, dtype=np.float64)  # phase of each bin relative to bin 0
    np.cumsum((along_freq[:, 1:] + along_freq[:, :-1]) * 0.5, axis=1, dtype=np.float64, out=across[:, 1:])
    relative = across - np.take_along_axis(across, owner, axis=1)  # ... relative to its owning peak
    steps = ((along_time[1:] + along_time[:-1]) * 0.5).astype(np.float64)
    phase = np.empty_like(relative)
    phase[0] = relative[0]
    for column in range(1, phase.shape[0]):
        carried = phase[column - 1] + steps[column - 1]
        phase[column] = carried[owner[column]] + relative[column]
    return _centre_to_start(phase, window, n_fft)


def spanning_tree_phase(magnitudes: np.ndarray, hop: int, window: int, n_fft: int,
                        floor_db: float = -60.0, frequencies: np.ndarray | None = None) -> np.ndarray:
    """Better PGHI substitute: integrate the gradients along the minimum spanning tree of the grid.

    Every bin hangs off its neighbour on the loudest path to a local peak, so phase flows along tonal
    ridges and across onsets the way the heap-ordered original does (`spanning_forest`, vectorised
    Borůvka). Bins more than `floor_db` below the loudest take part in no path (their phase is
    arbitrary: 0), as in PGHI; that also halves the work. Each island of louder bins starts from its
    loudest bin (phase 0 there).

    frequencies: (columns, bins) each bin's instantaneous frequency in bins, when it is known better than
    the magnitudes tell (a pitch shift knows where it put each partial: the magnitudes' slope, through the
    Gaussian approximation of the Hann window, places a partial a few cents off, which Griffin-Lim never
    corrects); the phase then advances by exactly that frequency from frame to frame.
    """
    columns, bins = magnitudes.shape
    along_time, along_freq = phase_gradients(magnitudes, hop, window, n_fft)
    if frequencies is not None:
        along_time = (frequencies * (2.0 * np.pi * hop / n_fft)).astype(np.float32)
    count = columns * bins
    peak = float(magnitudes.max())
    if peak <= 0:
        return _centre_to_start(np.zeros((columns, bins)), window, n_fft)
    # float32 relative to the peak is exact enough: the tree orders edges by float32 costs anyway
    # (`spanning_forest.cost_order`), and a loud bin's level (>= the floor) cannot underflow in a product.
    floor = np.float32(10.0 ** (floor_db / 20.0))
    level = magnitudes * np.float32(1.0 / peak)
    loud = level >= floor
    np.maximum(level, floor * floor, out=level)  # quiet bins take part in no edge; keep their costs finite
    # An edge is as good as the geometric mean of its two bins (only the order matters to an MST):
    # the quieter bin alone (a widest-path tree) ties every edge around a quiet bin and measured
    # 0.4 dB worse; the louder bin alone, 0.6 dB worse.
    # Edge costs on the grid, (columns, bins): [c, b] is the edge from bin (c, b) to (c, b + 1) in
    # `along_bins`, to (c + 1, b) in `along_columns`; inf where the grid ends.
    along_bins = np.full((columns, bins), np.inf, dtype=np.float32)
    along_bins[:, :-1] = 1.0 / np.sqrt(level[:, :-1] * level[:, 1:])
    along_columns = np.full((columns, bins), np.inf, dtype=np.float32)
    along_columns[:-1] = 1.0 / np.sqrt(level[:-1] * level[1:])
    to_next_bin = np.zeros((columns, bins), dtype=bool)
    to_next_bin[:, :-1] = loud[:, 1:] & loud[:, :-1]
    to_next_column = np.zeros((columns, bins), dtype=bool)
    to_next_column[:-1] = loud[1:] & loud[:-1]
    _drop_square_maxima(along_bins, along_columns, to_next_bin, to_next_column)
    tails = np.concatenate([np.flatnonzero(to_next_bin), np.flatnonzero(to_next_column)])
    bin_edges = int(np.count_nonzero(to_next_bin))
    heads = tails.copy()
    heads[:bin_edges] += 1
    heads[bin_edges:] += bins
    # Phase difference across each edge (trapezoid rule): along frequency between bins, along time
    # between columns (float32, as the gradients are; the sums along the tree are float64).
    differences = np.empty(tails.size, dtype=np.float32)
    flat_freq, flat_time = along_freq.ravel(), along_time.ravel()
    np.add(flat_freq[tails[:bin_edges]], flat_freq[heads[:bin_edges]], out=differences[:bin_edges])
    np.add(flat_time[tails[bin_edges:]], flat_time[heads[bin_edges:]], out=differences[bin_edges:])
    differences *= np.float32(0.5)
    costs = np.concatenate([along_bins.ravel()[tails[:bin_edges]], along_columns.ravel()[tails[bin_edges:]]])
    island, phase = spanning_forest.forest_values(count, tails, heads, costs, differences)
    phase -= phase[_loudest_bins(island, level.ravel())[island]]
    return _centre_to_start(phase.reshape(columns, bins), window, n_fft)


def _loudest_bins(island: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The loudest node of each island (the first, where two are as loud): (islands,) intp."""
    islands = int(island.max()) + 1
    top = np.full(islands, -np.inf)
    np.maximum.at(top, island, level)
    is_top = np.flatnonzero(level == top[island])
    first = np.full(islands, level.size, dtype=np.intp)
    np.minimum.at(first, island[is_top], is_top)
    return first


def _drop_square_maxima(along_bins: np.ndarray, along_columns: np.ndarray, to_next_bin: np.ndarray,
                        to_next_column: np.ndarray) -> None:
    """Clear, in the two edge masks, the costliest edge of every grid square whose four edges all exist
    and whose costliest edge is unique: by the cycle property it is in no minimum spanning tree, so the
    tree is the same without it. That is about 45% of the edges of a spectrogram's grid, and every
    round of the tree's construction shrinks with them. Ties keep all four edges (either may be in a tree).
    """
    top, bottom = along_bins[:-1, :-1], along_bins[1:, :-1]  # square (c, b): corners (c..c+1, b..b+1)
    left, right = along_columns[:-1, :-1], along_columns[:-1, 1:]
    complete = to_next_bin[:-1, :-1] & to_next_bin[1:, :-1] & to_next_column[:-1, :-1] & to_next_column[:-1, 1:]
    costliest = np.maximum(np.maximum(top, bottom), np.maximum(left, right))
    sides = [side == costliest for side in (top, bottom, left, right)]
    complete &= (sides[0].view(np.uint8) + sides[1] + sides[2] + sides[3]) == 1
    to_next_bin[:-1, :-1] &= ~(complete & sides[0])
    to_next_bin[1:, :-1] &= ~(complete & sides[1])
    to_next_column[:-1, :-1] &= ~(complete & sides[2])
    to_next_column[:-1, 1:] &= ~(complete & sides[3])


def peak_owners(magnitudes: np.ndarray) -> np.ndarray:
    """For each bin, the index of the spectral peak whose slope it sits on: (columns, bins) intp.

    Peaks are local maxima along frequency; a bin belongs to the peak it climbs to, going towards its
    larger neighbour.
    """
    columns, bins = magnitudes.shape
    rising = np.empty((columns, bins + 1), dtype=bool)  # rising[:, k]: bin k-1 < bin k (edges: outside low)
    np.less(magnitudes[:, :-1], magnitudes[:, 1:], out=rising[:, 1:-1])
    rising[:, 0] = True
    rising[:, -1] = False
    is_peak = rising[:, :-1] & ~rising[:, 1:]  # above the left neighbour, not below the right one
    index = np.arange(bins, dtype=np.int32)
    previous_peak = np.where(is_peak, index, np.int32(-1))
    np.maximum.accumulate(previous_peak, axis=1, out=previous_peak)
    next_peak = np.where(is_peak, index, np.int32(bins))[:, ::-1]
    next_peak = np.minimum.accumulate(next_peak, axis=1)[:, ::-1]
    # Climb towards the larger neighbour: right if the right one is larger than the left one.
    right_larger = np.empty((columns, bins), dtype=bool)
    np.greater(magnitudes[:, 2:], magnitudes[:, :-2], out=right_larger[:, 1:-1])
    right_larger[:, 0] = True
    right_larger[:, -1] = False
    owner = np.where(right_larger, next_peak, previous_peak)
    owner = np.where(owner < 0, next_peak, owner)
    owner = np.where(owner >= bins, previous_peak, owner)
    return np.where(is_peak, index, owner).astype(np.intp)


def _centre_to_start(phase: np.ndarray, window: int, n_fft: int) -> np.ndarray:
    """Refer phase to the frame start instead of the window centre (window / 2 samples earlier),
    wrapped to [-pi, pi] as float32."""
    phase = phase - (np.pi * window / n_fft) * np.arange(phase.shape[1])
    phase -= (2.0 * np.pi) * np.round(phase * (0.5 / np.pi))
    return phase.astype(np.float32)
