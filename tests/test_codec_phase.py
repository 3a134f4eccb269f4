"""The spanning-tree phase is what its definition says, however the work is cut: the gradients integrated
from each island's loudest bin along the minimum spanning tree of the whole grid, an edge costing
1 / sqrt(product of its two magnitudes). The reference below builds that tree on every edge, the slow
way; the codec drops edges no spanning tree can use before it sorts them."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from scipy.sparse import csgraph

from engine.codec.pghi import phase_gradients, spanning_tree_phase

HOP, WINDOW, N_FFT = 8, 64, 80


def reference_phase(magnitudes: np.ndarray, floor_db: float = -60.0) -> np.ndarray:
    columns, bins = magnitudes.shape
    level = magnitudes.astype(np.float64)
    loud = (level >= level.max() * 10.0 ** (floor_db / 20.0)).ravel()
    flat = level.ravel()
    node = np.arange(columns * bins).reshape(columns, bins)
    pairs = np.concatenate([np.stack([node[:, :-1].ravel(), node[:, 1:].ravel()], axis=1),
                            np.stack([node[:-1].ravel(), node[1:].ravel()], axis=1)])
    pairs = pairs[loud[pairs[:, 0]] & loud[pairs[:, 1]]]
    cost = 1.0 / np.sqrt(flat[pairs[:, 0]] * flat[pairs[:, 1]])
    graph = scipy.sparse.coo_matrix((cost, (pairs[:, 0], pairs[:, 1])), shape=(flat.size, flat.size)).tocsr()
    tree = csgraph.minimum_spanning_tree(graph)
    along_time, along_freq = (g.ravel().astype(np.float64) for g in phase_gradients(magnitudes, HOP, WINDOW, N_FFT))
    phase = np.zeros(flat.size)
    _, island = csgraph.connected_components(tree, directed=False)
    for label in np.unique(island[loud]):
        members = np.flatnonzero(island == label)
        root = members[np.argmax(flat[members])]
        order, parent = csgraph.breadth_first_order(tree, root, directed=False, return_predecessors=True)
        for child in order[1:]:
            up = parent[child]
            gradient = along_time if abs(child - up) == bins else along_freq
            phase[child] = phase[up] + 0.5 * (gradient[child] + gradient[up]) * np.sign(child - up)
    phase = phase.reshape(columns, bins) - (np.pi * WINDOW / N_FFT) * np.arange(bins)
    return phase


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spanning_tree_phase_integrates_along_the_minimum_spanning_tree_of_the_whole_grid(seed):
    rng = np.random.default_rng(seed)
    magnitudes = rng.lognormal(sigma=2.0, size=(40, 33)).astype(np.float32)
    magnitudes[:, 14:17] *= np.float32(1e-5)  # a quiet band below the floor: islands on either side
    magnitudes[20:23, :] = magnitudes[20:23, ::-1]  # an onset: structure across columns too
    expected = reference_phase(magnitudes)
    actual = spanning_tree_phase(magnitudes, HOP, WINDOW, N_FFT).astype(np.float64)
    difference = np.angle(np.exp(1j * (actual - expected)))
    assert np.abs(difference).max() < 1e-4
