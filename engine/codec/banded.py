"""Banded matrices as dense blocks of rows: the mel filterbanks, in numpy alone.

Each mel filter reads a narrow run of frequency bins, and the runs move up with the filter: row r's
non-zeros lie in a band of columns that slides right as r grows. Stored as blocks of consecutive rows,
each a small dense matrix over just the columns its rows touch, a product is one BLAS call per block.
That does more multiplications than a sparse product (the zeros inside each block) yet takes about as
long on these sizes, and it spares the codec `scipy.sparse`, whose import (~140 ms: it brings in scipy's
array-API layer) was a seventh of a cold `codec decode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

# What one more BLAS call costs, in entries of a block (each a multiply-add per column of the operand):
# a row joins the block above it while that adds fewer zeros than this, so blocks grow long where the
# band is narrow and stay short where it is wide.
CALL_COST_ENTRIES = 48


@dataclass(frozen=True, eq=False)
class BandedMatrix:
    """A (rows, columns) float32 matrix kept as dense blocks: block b covers rows
    row_edges[b]:row_edges[b + 1] and columns spans[b][0]:spans[b][1]; every entry outside the blocks
    is zero."""

    shape: tuple[int, int]
    row_edges: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]
    blocks: tuple[np.ndarray, ...]

    @classmethod
    def from_entries(cls, rows: np.ndarray, columns: np.ndarray, values: np.ndarray,
                     shape: tuple[int, int]) -> BandedMatrix:
        """The matrix with `values` at (`rows`, `columns`); repeated positions are summed (in float64,
        then stored as float32). Entries that are zero in float32 are dropped."""
        rows, columns = np.asarray(rows, dtype=np.int64), np.asarray(columns, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if not (rows.shape == columns.shape == values.shape and rows.ndim == 1):
            raise ValueError("rows, columns and values must be 1-D and of one length")
        height, width = shape
        if rows.size and (rows.min() < 0 or rows.max() >= height or columns.min() < 0 or columns.max() >= width):
            raise ValueError(f"an entry lies outside the {height} x {width} matrix")
        keys, inverse = np.unique(rows * width + columns, return_inverse=True)
        sums = np.bincount(inverse, weights=values, minlength=keys.size).astype(np.float32)
        keep = sums != 0  # after the cast: a sum too small for float32 is no entry either
        return cls._from_sorted(keys[keep] // width, keys[keep] % width, sums[keep], shape)

    @classmethod
    def _from_sorted(cls, rows: np.ndarray, columns: np.ndarray, values: np.ndarray,
                     shape: tuple[int, int]) -> BandedMatrix:
        edges = _row_blocks(rows, columns, shape[0])
        starts = np.searchsorted(rows, edges)  # entries are sorted by row, then column
        spans, blocks = [], []
        for b in range(len(edges) - 1):
            first, last = starts[b], starts[b + 1]
            if first == last:
                spans.append((0, 0))
                blocks.append(np.zeros((edges[b + 1] - edges[b], 0), dtype=np.float32))
                continue
            low, high = int(columns[first:last].min()), int(columns[first:last].max()) + 1
            block = np.zeros((edges[b + 1] - edges[b], high - low), dtype=np.float32)
            block[rows[first:last] - edges[b], columns[first:last] - low] = values[first:last]
            spans.append((low, high))
            blocks.append(block)
        return cls(shape=shape, row_edges=edges, spans=tuple(spans), blocks=tuple(blocks))

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, columns, values) of the non-zero entries, sorted by row, then column."""
        parts = []
        for (top, _), (low, _), block in zip(self._row_ranges, self.spans, self.blocks, strict=True):
            r, c = np.nonzero(block)
            parts.append((r + top, c + low, block[r, c]))
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.float32)
        for (top, bottom), (low, high), block in zip(self._row_ranges, self.spans, self.blocks, strict=True):
            out[top:bottom, low:high] = block
        return out

    def column_sums(self) -> np.ndarray:
        """(columns,) float32: each column's sum (float32, as the products add)."""
        out = np.zeros(self.shape[1], dtype=np.float32)
        for (low, high), block in zip(self.spans, self.blocks, strict=True):
            out[low:high] += block.sum(axis=0, dtype=np.float32)
        return out

    def __matmul__(self, dense: np.ndarray) -> np.ndarray:
        """self @ dense for dense (columns, k) float32: (rows, k) float32."""
        dense = self._operand(dense, self.shape[1])
        out = np.empty((self.shape[0], dense.shape[1]), dtype=np.float32)
        for (top, bottom), (low, high), block in zip(self._row_ranges, self.spans, self.blocks, strict=True):
            np.matmul(block, dense[low:high], out=out[top:bottom])
        return out

    @cached_property
    def T(self) -> BandedMatrix:
        """The transpose (numpy's name for it), blocked by its own rows: its band runs the same way, so a
        product with it is one BLAS call per block as well, with no overlapping blocks to add up."""
        rows, columns, values = self.entries()
        order = np.lexsort((rows, columns))
        return self._from_sorted(columns[order], rows[order], values[order], (self.shape[1], self.shape[0]))

    @cached_property
    def _row_ranges(self) -> tuple[tuple[int, int], ...]:
        return tuple(zip(self.row_edges[:-1], self.row_edges[1:], strict=True))

    @staticmethod
    def _operand(dense: np.ndarray, length: int) -> np.ndarray:
        if dense.ndim != 2 or dense.shape[0] != length:
            raise ValueError(f"the operand must be 2-D with {length} rows, not {dense.shape}")
        return np.ascontiguousarray(dense, dtype=np.float32)


def _row_blocks(rows: np.ndarray, columns: np.ndarray, height: int) -> tuple[int, ...]:
    """Block edges (0, ..., height) for entries sorted by row: greedy, a row joins the current block
    while the zeros it adds to the block cost less than a block of its own (CALL_COST_ENTRIES)."""
    lowest = np.full(height, np.iinfo(np.int64).max)
    highest = np.full(height, -1)
    np.minimum.at(lowest, rows, columns)
    np.maximum.at(highest, rows, columns + 1)
    low, high = lowest.tolist(), highest.tolist()  # Python ints: the loop below is ~5x faster on them
    edges, top, span_low, span_high = [0], 0, low[0], high[0]
    for row in range(1, height):
        if high[row] < 0:  # an empty row costs nothing anywhere
            continue
        if span_high < 0:
            span_low, span_high = low[row], high[row]
            continue
        joined_low, joined_high = min(span_low, low[row]), max(span_high, high[row])
        added = (row + 1 - top) * (joined_high - joined_low) - (row - top) * (span_high - span_low)
        if added - (high[row] - low[row]) > CALL_COST_ENTRIES:
            edges.append(row)
            top, span_low, span_high = row, low[row], high[row]
        else:
            span_low, span_high = joined_low, joined_high
    return (*edges, height)
