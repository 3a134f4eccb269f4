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


def edge_keys(costs: np.ndarray) -> np.ndarray:
    """Unique int64 sort keys for non-negative finite costs: float32 cost bits, then the edge index.

    The bits of a non-negative float32 read as an integer keep the floats' order, so comparing keys
    compares costs first and breaks ties by index.
    """
    if costs.size >= 2**31:
        raise ValueError("too many edges for 32-bit edge indices")
    bits = np.ascontiguousarray(costs, dtype=np.float32).view(np.int32).astype(np.int64)
    return (bits << 32) | np.arange(costs.size, dtype=np.int64)


def forest_values(count: int, tails: np.ndarray, heads: np.ndarray, costs: np.ndarray,
                  differences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values at `count` nodes such that value[head] - value[tail] = difference on every edge of the
    minimum spanning forest of the graph (edges tails[i] -- heads[i] costing costs[i] >= 0).

    Returns (component, value): component (count,) intp numbers the trees 0..K-1 (a node with no edge
    is a tree of its own); value (count,) float64 is relative to an arbitrary node of each tree, so the
    caller picks each tree's reference (`pghi` sets its loudest bin to 0).
    """
    tails = np.asarray(tails, dtype=np.intp)
    heads = np.asarray(heads, dtype=np.intp)
    differences = np.asarray(differences, dtype=np.float64)
    keys = edge_keys(costs)
    component = np.arange(count, dtype=np.intp)
    identity = np.arange(count, dtype=np.intp)
    value = np.zeros(count, dtype=np.float64)
    # Per-component work arrays, allocated once (fresh large arrays cost page faults every round).
    cheapest_buffer = np.empty(count, dtype=np.int64)
    link_buffer = np.empty(count, dtype=np.intp)
    shift_buffer = np.empty(count, dtype=np.float64)
    components = count
    live_tails, live_heads, live_keys = tails, heads, keys
    while live_keys.size:
        tail_of, head_of = component[live_tails], component[live_heads]
        across = tail_of != head_of
        if not across.all():
            live_tails, live_heads, live_keys = live_tails[across], live_heads[across], live_keys[across]
            tail_of, head_of = tail_of[across], head_of[across]
            if not live_keys.size:
                break
        cheapest = cheapest_buffer[:components]
        cheapest.fill(_NO_EDGE)
        np.minimum.at(cheapest, tail_of, live_keys)
        np.minimum.at(cheapest, head_of, live_keys)
        joining = np.flatnonzero(cheapest != _NO_EDGE)
        edge = (cheapest[joining] & _INDEX_BITS).astype(np.intp)
        tail, head = tails[edge], heads[edge]
        from_tail = component[tail] == joining
        target = np.where(from_tail, component[head], component[tail])
        # Anchor of the joining component minus the target's, from value[head] - value[tail] = difference.
        gap = value[head] - value[tail] - differences[edge]
        link = link_buffer[:components]
        link[:] = identity[:components]
        link[joining] = target
        shift = shift_buffer[:components]
        shift.fill(0.0)
        shift[joining] = np.where(from_tail, gap, -gap)
        # Two components that chose each other (the same edge): the lower number stays the root.
        pair = joining[(link[target] == joining) & (joining < target)]
        link[pair] = pair
        shift[pair] = 0.0
        _follow_to_roots(link, shift)
        renumber = np.cumsum(link == identity[:components]) - 1
        value += shift[component]
        component = renumber[link][component]
        components = int(renumber[-1]) + 1
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
