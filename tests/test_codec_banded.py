"""Banded matrices (the codec's filterbanks without scipy.sparse): the products and sums of the dense
matrix they stand for, on random bands and on the filterbanks themselves."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from engine.codec.banded import BandedMatrix
from engine.codec.mel import analysis_filterbank, grid_filterbank
from engine.codec.params import DEFAULT_PARAMS


def random_band(rng: np.random.Generator, height: int, width: int, *, empty_rows: bool = False):
    """(rows, columns, values) of a band sliding right by ~width/height per row, 1-12 entries a row."""
    rows, columns = [], []
    for row in range(height):
        if empty_rows and rng.random() < 0.2:
            continue
        start = min(width - 1, int(row * width / height) + int(rng.integers(-3, 4)) % width)
        count = int(rng.integers(1, 13))
        rows += [row] * count
        columns += list(np.clip(start + rng.integers(0, 12, count), 0, width - 1))
    values = rng.random(len(rows)) + 0.01
    return np.array(rows), np.array(columns), values


@pytest.mark.parametrize(("height", "width", "empty_rows"), [(512, 1017, False), (512, 4000, True), (7, 300, True),
                                                            (300, 20, False), (1, 1, False)])
def test_products_and_sums_are_the_dense_matrixs(height, width, empty_rows):
    rng = np.random.default_rng(height * width)
    rows, columns, values = random_band(rng, height, width, empty_rows=empty_rows)
    # Repeated positions add up, as in scipy's COO -> CSR.
    dense = scipy.sparse.coo_matrix((values, (rows, columns)), shape=(height, width)).toarray().astype(np.float32)
    matrix = BandedMatrix.from_entries(rows, columns, values, (height, width))
    np.testing.assert_array_equal(matrix.to_dense(), dense)
    right = rng.random((width, 33), dtype=np.float32)
    left = rng.random((height, 33), dtype=np.float32)
    scale = float(np.abs(dense).sum(axis=1).max() + np.abs(dense).sum(axis=0).max())
    np.testing.assert_allclose(matrix @ right, dense @ right, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(matrix.T @ left, dense.T @ left, rtol=0, atol=1e-6 * scale)
    np.testing.assert_array_equal(matrix.T.to_dense(), dense.T)
    np.testing.assert_allclose(matrix.column_sums(), dense.sum(axis=0), rtol=1e-6)
    r, c, v = matrix.entries()
    assert (np.diff(r * width + c) > 0).all()  # sorted, each position once
    np.testing.assert_array_equal(dense[r, c], v)


def test_entries_that_vanish_are_dropped():
    matrix = BandedMatrix.from_entries([0, 0, 1], [1, 1, 2], [0.5, -0.5, 1e-50], (2, 3))
    assert matrix.entries()[0].size == 0 and not matrix.to_dense().any()
    np.testing.assert_array_equal(matrix @ np.ones((3, 2), np.float32), np.zeros((2, 2), np.float32))


@pytest.mark.parametrize("bad", ["outside", "lengths", "operand"])
def test_bad_entries_and_operands_are_refused(bad):
    if bad == "outside":
        with pytest.raises(ValueError, match="outside the 2 x 3"):
            BandedMatrix.from_entries([0, 2], [0, 0], [1.0, 1.0], (2, 3))
    elif bad == "lengths":
        with pytest.raises(ValueError, match="one length"):
            BandedMatrix.from_entries([0, 1], [0], [1.0, 1.0], (2, 3))
    else:
        with pytest.raises(ValueError, match="3 rows"):
            _ = BandedMatrix.from_entries([0], [0], [1.0], (2, 3)) @ np.ones((2, 4), np.float32)


@pytest.mark.parametrize("bank", ["analysis", "coarse grid", "fine grid"])
def test_the_filterbanks_keep_a_small_share_of_their_dense_size(bank):
    """The point of the blocks: a product touches about as many entries as a sparse one would, not the
    dense matrix (512 x 1,017-4,000)."""
    matrix = (analysis_filterbank(DEFAULT_PARAMS) if bank == "analysis"
              else grid_filterbank(DEFAULT_PARAMS, 25200.0, 2560 if bank == "coarse grid" else 5120).matrix)
    for part in (matrix, matrix.T):
        stored = sum(block.size for block in part.blocks)
        assert stored < 0.08 * part.shape[0] * part.shape[1]
        assert stored < 8 * part.entries()[0].size
