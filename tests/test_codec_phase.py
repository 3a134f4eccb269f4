"""The spanning-tree phase is what its definition says, however the work is cut: the gradients integrated
from each island's loudest bin along the minimum spanning tree of the whole grid, an edge costing
1 / sqrt(product of its two magnitudes). The reference below builds that tree on every edge with
scipy.sparse.csgraph, the slow way; the codec drops edges no spanning tree can use and builds the tree
itself, without scipy (engine/codec/spanning_forest.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from scipy.sparse import csgraph

from engine.codec.pghi import phase_gradients, spanning_tree_phase
from engine.codec.spanning_forest import forest_values

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


def random_graph(rng: np.random.Generator, nodes: int, edges: int, distinct_costs: int):
    pairs = np.sort(rng.integers(0, nodes, (edges, 2)), axis=1)
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)  # simple graph: no loops, no repeated edges
    rng.shuffle(pairs)
    costs = rng.integers(1, distinct_costs + 1, len(pairs)).astype(np.float64)  # few values: many ties
    return pairs[:, 0], pairs[:, 1], costs, rng.normal(size=len(pairs))


@pytest.mark.parametrize("distinct_costs", [1, 3, 1000])
def test_forest_values_lie_on_a_minimum_spanning_forest_of_any_graph_even_with_tied_costs(distinct_costs):
    rng = np.random.default_rng(distinct_costs)
    nodes = 300
    tails, heads, costs, differences = random_graph(rng, nodes, 420, distinct_costs)  # sparse: several trees
    component, value = forest_values(nodes, tails, heads, costs, differences)

    graph = scipy.sparse.coo_matrix((costs, (tails, heads)), shape=(nodes, nodes)).tocsr()
    trees, expected_component = csgraph.connected_components(graph, directed=False)
    assert component.max() + 1 == trees
    # The same partition into trees (numbered differently).
    assert len(set(zip(component.tolist(), expected_component.tolist(), strict=True))) == trees
    # The edges whose difference the values satisfy include a spanning forest of minimum weight.
    satisfied = np.isclose(value[heads] - value[tails], differences, atol=1e-9)
    assert satisfied.sum() == nodes - trees
    tree = scipy.sparse.coo_matrix((costs[satisfied], (tails[satisfied], heads[satisfied])), shape=(nodes, nodes))
    assert csgraph.connected_components(tree, directed=False)[0] == trees
    mst_weight = csgraph.minimum_spanning_tree(graph).sum()
    assert csgraph.minimum_spanning_tree(tree.tocsr()).sum() == pytest.approx(mst_weight)


def test_forest_values_of_nodes_without_edges_are_trees_of_their_own():
    component, value = forest_values(4, np.array([1]), np.array([2]), np.array([0.5]), np.array([0.25]))
    assert len(set(component.tolist())) == 3 and component[1] == component[2]
    assert value[2] - value[1] == 0.25 and value[0] == 0.0 and value[3] == 0.0


def test_forest_values_refuse_costs_their_keys_cannot_order():
    for bad in (-1.0, np.nan):
        with pytest.raises(ValueError, match="edge costs must be non-negative"):
            forest_values(2, np.array([0]), np.array([1]), np.array([bad]), np.array([0.0]))
