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
  it. A few milliseconds for a 5 s clip.
- `spanning_tree_phase` (better, ~0.3 s): integrates along the maximum spanning tree of the
  magnitude grid, the paths through the loudest bins, which is what the heap order approximates.

Shapes: magnitudes (columns, bins) float32 on the grid of an `n_fft`-point FFT; the returned phase
(columns, bins) float32 is in the convention of `rfft` of a frame whose window starts at sample 0.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
from scipy.sparse import csgraph

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
    owner = _peak_owners(magnitudes)
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


def spanning_tree_phase(magnitudes: np.ndarray, hop: int, window: int, n_fft: int) -> np.ndarray:
    """Better PGHI substitute: integrate the gradients along the maximum spanning tree of the grid.

    Every bin hangs off its neighbour on the loudest path to the loudest bin, so phase flows along
    tonal ridges and across onsets the way the heap-ordered original does, in C (scipy.csgraph).
    """
    columns, bins = magnitudes.shape
    along_time, along_freq = phase_gradients(magnitudes, hop, window, n_fft)
    count = columns * bins
    ids = np.arange(count, dtype=np.int32).reshape(columns, bins)
    level = magnitudes.astype(np.float64) + max(float(magnitudes.max()), 1e-30) * 1e-9
    # An edge is as good as the geometric mean of its two bins (only the order matters to an MST).
    # The quieter bin alone (a widest-path tree) ties every edge around a quiet bin and measured
    # 0.4 dB worse; the louder bin alone, 0.6 dB worse.
    time_cost = 1.0 / np.sqrt(level[1:] * level[:-1])
    freq_cost = 1.0 / np.sqrt(level[:, 1:] * level[:, :-1])
    graph = scipy.sparse.csr_matrix(
        (np.concatenate([time_cost.ravel(), freq_cost.ravel()]),
         (np.concatenate([ids[:-1].ravel(), ids[:, :-1].ravel()]),
          np.concatenate([ids[1:].ravel(), ids[:, 1:].ravel()]))),
        shape=(count, count))
    tree = csgraph.minimum_spanning_tree(graph)
    root = int(np.argmax(level))
    _, parent = csgraph.breadth_first_order(tree, root, directed=False, return_predecessors=True)
    parent = np.where(parent < 0, np.arange(count), parent).astype(np.int64)
    # Phase step from each bin's parent to it: along time or along frequency (trapezoid rule).
    node = np.arange(count)
    d_column = node // bins - parent // bins
    d_bin = node % bins - parent % bins
    flat_time, flat_freq = along_time.ravel(), along_freq.ravel()
    step = np.where(d_column != 0, d_column * (flat_time + flat_time[parent]) * 0.5,
                    d_bin * (flat_freq + flat_freq[parent]) * 0.5)
    step[root] = 0.0
    # Sum the steps from the root down by pointer jumping: log2(depth) vectorised passes.
    while True:
        grandparent = parent[parent]
        step += step[parent]
        if np.array_equal(grandparent, parent):
            break
        parent = grandparent
    return _centre_to_start(step.reshape(columns, bins), window, n_fft)


def _peak_owners(magnitudes: np.ndarray) -> np.ndarray:
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
