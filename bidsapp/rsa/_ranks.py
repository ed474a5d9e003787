"""Rank helpers shared by the searchlight engines (numpy).

Ranks are carried *doubled and centered*: for a vector of m values with average (1-based) ranks
r, the engines work with ``2 * r - (m + 1)``.  Average ranks are multiples of 1/2, so these are
integers, and sums of their products are exact in floating point as long as they stay below
2**53 (float64) or 2**24 (float32).  Centering makes a Spearman correlation a plain cosine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.linalg.lapack import dtrttf
from scipy.stats import rankdata


def doubled_centered_from_sorted(sorted_values: np.ndarray) -> np.ndarray:
    """Return doubled centered average ranks of values already sorted along the last axis.

    Parameters
    ----------
    sorted_values : numpy.ndarray
        Values sorted in ascending order along the last axis (any leading shape).

    Returns
    -------
    numpy.ndarray
        int64 array of the same shape: ``left + right + 1 - n`` where ``left`` and ``right`` are
        the first and last 0-based positions of each value's run of equal values, so that
        ``(left + right) / 2 + 1`` is the average rank scipy gives.
    """
    n = sorted_values.shape[-1]
    flat = sorted_values.reshape(-1)
    starts = np.empty(flat.size, dtype=bool)
    starts[0] = True
    np.not_equal(flat[1:], flat[:-1], out=starts[1:])
    starts[::n] = True  # runs do not cross rows
    first = np.flatnonzero(starts)
    lengths = np.diff(first, append=flat.size)
    # left + right + 1 - n with right = left + length - 1.
    run_ranks = 2 * (first % n) + lengths - n
    return np.repeat(run_ranks, lengths).reshape(sorted_values.shape)


def doubled_centered_ranks(values: np.ndarray, out: np.ndarray) -> None:
    """Write the doubled centered average ranks of a 1-D float array into `out`, by sorting.

    Values are compared after rounding to a grid of ``2**-QUANTUM_BITS`` relative to their
    largest magnitude (see :func:`quantize`), so that values equal but for the last bits of
    floating-point rounding are tied.

    Parameters
    ----------
    values : numpy.ndarray
        1-D float64 array without NaN.
    out : numpy.ndarray
        1-D float64 array of the same length; receives the ranks in the order of `values`.
    """
    index_bits = max(1, (len(values) - 1).bit_length())
    keys = quantize(values, 64 - index_bits)
    # Pack (value, position) in one uint64 so that a plain sort carries the permutation.
    keys <<= np.uint64(index_bits)
    keys |= np.arange(len(values), dtype=np.uint64)
    keys.sort()
    out[keys & np.uint64((1 << index_bits) - 1)] = doubled_centered_from_sorted(
        keys >> np.uint64(index_bits))


#: Bits below the largest magnitude at which target RDM values are compared for ties.
QUANTUM_BITS = 45


def quantize(values: np.ndarray, value_bits: int) -> np.ndarray:
    """Map floats to uint64 in the same order, on a grid of 2**-QUANTUM_BITS of max |value|.

    Parameters
    ----------
    values : numpy.ndarray
        Finite floats.
    value_bits : int
        The result must fit in this many bits (at least QUANTUM_BITS + 2).

    Returns
    -------
    numpy.ndarray
        uint64 array: ``rint(values * scale) + offset`` with one scale for the whole array.
    """
    bits = min(QUANTUM_BITS, value_bits - 2)
    largest = float(np.abs(values).max())
    scale = 2.0**bits / largest if largest > 0 else 1.0
    grid = np.rint(values * scale)
    grid -= grid.min()
    return grid.astype(np.uint64)


@dataclass(frozen=True)
class PairLayout:
    """Where each (TR i, TR j) pair of a T x T symmetric matrix sits in the engines' vectors.

    The numpy engine gets the Gram matrix from LAPACK ``ssfrk`` in *rectangular full packed*
    (RFP) format: the upper triangle, diagonal included, in T (T + 1) / 2 contiguous entries,
    with no gather.  Target ranks and candidate columns use that order; the T diagonal
    positions hold zeros in the candidate columns.  The order does not change a correlation
    between two vectors, as long as targets and candidates share it.
    """

    rows: np.ndarray
    """TR i of each position (length T (T + 1) / 2)."""
    cols: np.ndarray
    """TR j >= i of each position."""
    diagonal: np.ndarray
    """Positions of the T diagonal entries, in TR order."""
    off_diagonal: np.ndarray
    """Positions of the T (T - 1) / 2 off-diagonal pairs."""


@lru_cache(maxsize=8)
def pair_layout(n_trs: int) -> PairLayout:
    """Return the RFP layout (``transr='N', uplo='U'``) of a T x T symmetric matrix."""
    rows, cols = np.triu_indices(n_trs)
    # LAPACK converts a full triangle to RFP: convert matrices that hold their row and column
    # numbers to learn where each entry goes.  float64 holds the indices exactly.
    where = []
    for values in (rows, cols):
        full = np.zeros((n_trs, n_trs), order="F")
        full[rows, cols] = values
        packed, info = dtrttf(full, transr="N", uplo="U")
        if info != 0:
            raise RuntimeError(f"LAPACK dtrttf failed (info={info})")
        where.append(packed.astype(np.intp))
    pair_rows, pair_cols = where
    diagonal = np.flatnonzero(pair_rows == pair_cols)
    diagonal = diagonal[np.argsort(pair_rows[diagonal])]
    layout = PairLayout(pair_rows, pair_cols, diagonal, np.flatnonzero(pair_rows != pair_cols))
    for a in (layout.rows, layout.cols, layout.diagonal, layout.off_diagonal):
        a.flags.writeable = False
    return layout


def prepare_candidates(candidate_rdms: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the candidate RDMs as comparison-ready columns and their norms.

    Parameters
    ----------
    candidate_rdms : numpy.ndarray
        Shape (L, T, T); only the strict upper triangle is read.
    method : {'spearman', 'pearson'}
        'spearman': doubled centered average ranks of each upper triangle (exact integers);
        'pearson': each upper triangle minus its mean.

    Returns
    -------
    columns : numpy.ndarray
        float64, shape (T * (T + 1) / 2, L), rows in the order of :func:`pair_layout`, zero at
        the diagonal positions.  Columns of layers with a NaN in their upper triangle are zero.
    norms : numpy.ndarray
        float64, shape (L,): the Euclidean norm of each column; NaN for a layer with a NaN in its
        upper triangle and 0 for a constant one, so that the map value comes out NaN.
    """
    n_layers, n_trs, _ = candidate_rdms.shape
    layout = pair_layout(n_trs)
    pairs = layout.off_diagonal
    upper = np.asarray(candidate_rdms[:, layout.rows[pairs], layout.cols[pairs]],
                       dtype=np.float64)
    columns = np.zeros((len(layout.rows), n_layers), dtype=np.float64)
    norms = np.full(n_layers, np.nan)
    for layer, values in enumerate(upper):
        if np.isnan(values).any():
            continue  # scipy's spearmanr propagates NaN: so does the map
        if method == "spearman":
            column = 2.0 * rankdata(values) - (len(values) + 1)
        else:
            column = values - values.mean()
        columns[pairs, layer] = column
        norms[layer] = np.sqrt(column @ column)
    return columns, norms


def reorder_columns(columns: np.ndarray, norms: np.ndarray,
                    orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the columns of the candidate RDMs reordered by each TR order.

    Reordering the rows and columns of a symmetric matrix by one permutation maps its
    off-diagonal pairs one to one onto each other, so the values of the upper triangle, and
    hence their ranks, are those of the original, at other positions: each reordered column
    is a gather of the ranked one, equal to :func:`prepare_candidates` of the reordered RDM.
    An order that repeats a TR maps some off-diagonal pairs onto the diagonal (a TR with
    itself, the smallest dissimilarity) and leaves out others; its gathered column, whose
    values keep the order of the original ranks, is ranked again (Spearman only).

    Parameters
    ----------
    columns, norms : numpy.ndarray
        (m, L) columns and (L,) norms from :func:`prepare_candidates`.
    orders : numpy.ndarray
        int (K, T): TR indices; the reordered RDM is ``rdm[order][:, order]``.

    Returns
    -------
    columns : numpy.ndarray
        float64 (m, K * L): the L columns of order 0, then those of order 1, and so on.
    norms : numpy.ndarray
        float64 (K * L,).
    """
    n_orders, n_trs = orders.shape
    layout = pair_layout(n_trs)
    # Position of every (i, j), both triangles, in the packed layout.
    position = np.empty((n_trs, n_trs), dtype=np.intp)
    position[layout.rows, layout.cols] = np.arange(len(layout.rows))
    position[layout.cols, layout.rows] = position[layout.rows, layout.cols]
    n_layers = columns.shape[1]
    out = np.empty((columns.shape[0], n_orders * n_layers), dtype=np.float64)
    out_norms = np.tile(norms, n_orders)
    pairs = layout.off_diagonal
    for k, order in enumerate(orders):
        gather = position[order[layout.rows], order[layout.cols]]
        out[:, k * n_layers:(k + 1) * n_layers] = columns[gather]
        if np.array_equal(np.sort(order), np.arange(n_trs)):
            continue
        onto_diagonal = (order[layout.rows] == order[layout.cols])[pairs]
        for layer in range(n_layers):
            if not norms[layer] > 0:  # NaN or constant: its column is zeros, gathered or not
                continue
            keys = out[pairs, k * n_layers + layer]
            keys[onto_diagonal] = -np.inf
            column = 2.0 * rankdata(keys) - (len(keys) + 1)
            out[pairs, k * n_layers + layer] = column
            out_norms[k * n_layers + layer] = np.sqrt(column @ column)
    return out, out_norms


def order_keys(patterns: np.ndarray) -> np.ndarray:
    """Return uint32 keys with the order and the ties of each TR's values, voxels first.

    Parameters
    ----------
    patterns : numpy.ndarray
        Shape (T, V), finite values of any real dtype.

    Returns
    -------
    numpy.ndarray
        uint32, shape (V, T), C-contiguous: ``keys[v, t] < keys[w, t]`` iff
        ``patterns[t, v] < patterns[t, w]``, and equal keys iff equal values.  Voxel-major, so
        that a sphere's voxels are gathered as contiguous rows.

    Notes
    -----
    Values that float32 holds exactly (float32, float16, 8- and 16-bit integers, and float64 data
    that was float32 on disk, as ``nibabel``'s ``get_fdata`` returns) are keyed by their bits:
    flipping a float32's sign bit, and all bits of a negative one, gives an unsigned integer in
    the same order.  Other data are keyed by dense ranks within each TR.
    """
    n_trs, n_voxels = patterns.shape
    keys = np.empty((n_voxels, n_trs), dtype=np.uint32)
    # Blocks of voxels bound the temporary copies to a few MB.
    for start in range(0, n_voxels, _KEY_BLOCK):
        block = patterns[:, start : start + _KEY_BLOCK]
        single = block.astype(np.float32)
        if block.dtype != np.float32 and not np.array_equal(single, block):
            return _dense_rank_keys(patterns, keys)
        # Adding +0.0 turns -0.0 into +0.0, which must share its key.
        single += np.float32(0.0)
        bits = single.view(np.uint32)
        bits ^= (bits >> np.uint32(31)) * np.uint32(0x7FFFFFFF) | np.uint32(0x80000000)
        keys[start : start + _KEY_BLOCK] = bits.T
    return keys


_KEY_BLOCK = 4096


def _dense_rank_keys(patterns: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Fill ``keys`` (V, T) with each TR's dense ranks (equal values share a rank)."""
    for t, values in enumerate(patterns):
        keys[:, t] = np.unique(values, return_inverse=True)[1].reshape(-1)
    return keys
