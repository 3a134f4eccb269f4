"""Integrate differences along a minimum spanning forest, in numpy: Borůvka's algorithm with potentials.

The spanning-tree phase (`pghi.spanning_tree_phase`) needs, for a graph whose edges carry a cost and a
difference (phase at one end minus phase at the other), the values that satisfy every difference on
the edges of the minimum spanning forest. scipy.sparse.csgraph builds the tree (Kruskal: one sort of
every edge), then a breadth-first search orients it and a pass sums along it; importing csgraph costs
a cold start ~60 ms (it pulls in scipy.sparse.linalg and scipy.linalg) and the sort dominates its run.

Borůvka instead joins every component to its cheapest neighbour at once, so a handful of vectorised
rounds (components at least halve each round) build the same forest without a sort. Each component
keeps its values relative to an anchor; joining component c to d along an edge fixes c's anchor
relative to d's, so the values come out of the merges themselves, with no tree to orient or walk.
Edges are ordered by (cost as float32, edge index): unique keys, so the forest is well defined even
where costs tie, and it is a minimum spanning forest for the float32 costs.
"""

from __future__ import annotations

import numpy as np

_NO_EDGE = np.iinfo(np.int64).max
_INDEX_BITS = np.int64(0xFFFFFFFF)


def cost_order(costs: np.ndarray) -> np.ndarray:
    """int64 keys ordered as non-negative costs rounded to float32, in the high 32 bits; the low 32
    bits are left for an edge's position, which breaks ties.

    The bits of a non-negative float32 read as an integer keep the floats' order, so comparing keys
    compares costs first.
    """
    if costs.size >= 2**31:
        raise ValueError("too many edges for 32-bit edge indices")
    if costs.size and not float(np.min(costs)) >= 0.0:  # a negative (or NaN) cost's bits would misorder
        raise ValueError("edge costs must be non-negative numbers")
    return np.ascontiguousarray(costs, dtype=np.float32).view(np.int32).astype(np.int64) << 32


def forest_values(count: int, tails: np.ndarray, heads: np.ndarray, costs: np.ndarray,
                  differences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values at `count` nodes such that value[head] - value[tail] = difference on every edge of the
    minimum spanning forest of the graph (edges tails[i] -- heads[i] costing costs[i] >= 0).

    Returns (component, value): component (count,) intp numbers the trees 0..K-1 (a node with no edge
    is a tree of its own); value (count,) float64 is relative to an arbitrary node of each tree, so the
    caller picks each tree's reference (`pghi` sets its loudest bin to 0).

    Each round contracts the graph: components become the nodes of the next round and the edges
    between them carry the difference between their anchors, so after the first round (which leaves
    a few percent of the nodes on a spectrogram's grid) the work is proportional to what is left.
    """
    ordered = cost_order(costs)  # the low half of each key: the edge's position, set each round
    tails = np.asarray(tails, dtype=np.intp)
    heads = np.asarray(heads, dtype=np.intp)
    differences = np.asarray(differences, dtype=np.float64)
    levels: list[tuple[np.ndarray, np.ndarray]] = []  # per round: (next-round node, anchor offset)
    nodes = count
    # Made once and sliced each round: a cold process pays page faults for every fresh large array.
    positions = np.arange(tails.size, dtype=np.int64)
    identity = np.arange(count, dtype=np.intp)
    cheapest_buffer = np.empty(count, dtype=np.int64)
    while True:
        across = tails != heads
        if not across.all():
            tails, heads, differences, ordered = tails[across], heads[across], differences[across], ordered[across]
        if not tails.size:
            break
        # Positions keep the original order (filtering does), so (cost, position) orders as (cost, index).
        keys = ordered | positions[: tails.size]
        cheapest = cheapest_buffer[:nodes]
        cheapest.fill(_NO_EDGE)
        np.minimum.at(cheapest, tails, keys)
        np.minimum.at(cheapest, heads, keys)
        joining = np.flatnonzero(cheapest != _NO_EDGE)
        edge = (cheapest[joining] & _INDEX_BITS).astype(np.intp)
        from_tail = tails[edge] == joining
        link = identity[:nodes].copy()
        link[joining] = np.where(from_tail, heads[edge], tails[edge])
        # value[joining] - value[target] across the chosen edge (value[head] - value[tail] = difference).
        shift = np.zeros(nodes, dtype=np.float64)
        shift[joining] = np.where(from_tail, -differences[edge], differences[edge])
        # Two components that chose each other (the same edge): the lower number stays the root.
        pair = joining[(link[link[joining]] == joining) & (joining < link[joining])]
        link[pair] = pair
        shift[pair] = 0.0
        _follow_to_roots(link, shift)
        renumber = np.cumsum(link == identity[:nodes]) - 1
        target = renumber[link]
        levels.append((target, shift))
        differences = differences + shift[tails] - shift[heads]
        tails, heads = target[tails], target[heads]
        nodes = int(renumber[-1]) + 1
    # Compose the rounds from the last: a node's value is its anchor offsets summed up to its tree.
    component = np.arange(nodes, dtype=np.intp)
    value = np.zeros(nodes, dtype=np.float64)
    for target, shift in reversed(levels):
        value = shift + value[target]
        component = component[target]
    return component, value


def _follow_to_roots(link: np.ndarray, shift: np.ndarray) -> None:
    """Pointer jumping, in place: each entry of `link` becomes its root, and `shift` its offset from it.

    A forest given by parent links (roots link to themselves). Each pass halves the distance to the
    root of the entries not there yet (log2(depth) passes); only those entries are touched.
    """
    pending = np.flatnonzero(link[link] != link)
    while pending.size:
        parent = link[pending]
        shift[pending] += shift[parent]
        grand = link[parent]
        link[pending] = grand
        pending = pending[link[grand] != grand]
