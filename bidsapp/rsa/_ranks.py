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


@dataclass(frozen=True)
class PermutedCandidates:
    """The candidates of a permutation null, kept once and gathered per TR order on demand.

    Reordering a candidate RDM by a TR order (``rdm[order][:, order]``) moves its values: the
    reordered RDM's ranked column is a gather of the ranked original.  Kept here: each layer's
    ranked RDM as a full symmetric T x T matrix (both triangles, so that pairs of neighbouring
    TRs stay neighbours in memory whatever the order), the orders, and the norm of every
    reordered column.  K orders then cost T x T x L floats, not K x L columns.
    """

    blocks: tuple[np.ndarray, ...]
    """float32 (T * T, w) arrays of w = 8, 4, 2 or 1 consecutive layers, L in all: layer l's
    doubled centered ranks (or centered values) of pair (i, j) in row ``i * T + j``, its
    smallest value on the diagonal (see :func:`permuted_candidates`).  A row of 8 layers is
    32 bytes: numpy gathers rows of 1 to 32 bytes without a call per row."""
    orders: np.ndarray
    """int32 (K, T): the TR orders."""
    norms: np.ndarray
    """float64 (K * L,): the norm, about its mean, of the L reordered columns of each order."""
    columns: np.ndarray
    """float64 (T (T + 1) / 2, L): the columns as given (:func:`prepare_candidates`), for
    orders that are the identity, which are computed exactly in float64."""
    column_norms: np.ndarray
    """float64 (L,): their norms."""


def permuted_candidates(columns: np.ndarray, norms: np.ndarray,
                        orders: np.ndarray) -> PermutedCandidates:
    """Prepare the candidates of a permutation null for gathering.

    An order that permutes the TRs maps the off-diagonal pairs one to one onto each other: the
    reordered column holds the original ranks, exactly those :func:`prepare_candidates` gives
    the reordered RDM.  An order that repeats TRs (:func:`bidsapp.stats.fitted_index`) maps
    some pairs twice, others not at all, and pairs of a TR with itself onto the diagonal: the
    reordered column keeps the ranks of the original RDM where it gathered them, and a pair
    of a TR with itself takes the layer's smallest value (the most similar pair).  Its norm is
    taken about its own mean, so that the correlation is a Pearson correlation with those
    values; they are not ranked again (``docs/statistics.md``).

    Parameters
    ----------
    columns, norms : numpy.ndarray
        (m, L) columns and (L,) norms from :func:`prepare_candidates`.
    orders : numpy.ndarray
        int (K, T): TR indices; the reordered RDM is ``rdm[order][:, order]``.

    Returns
    -------
    PermutedCandidates
    """
    n_orders, n_trs = orders.shape
    n_layers = columns.shape[1]
    full = _full_matrices(columns, norms, n_trs, np.float32)
    out_norms = _reordered_norms(full, norms, orders)
    flat = full.reshape(n_layers, -1)
    blocks, first = [], 0
    for width in _gather_widths(n_layers):
        blocks.append(np.ascontiguousarray(flat[first:first + width].T))
        first += width
    return PermutedCandidates(blocks=tuple(blocks),
                              orders=np.ascontiguousarray(orders, dtype=np.int32),
                              norms=out_norms, columns=columns, column_norms=norms)


def reorder_columns(columns: np.ndarray, norms: np.ndarray,
                    orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the columns of the candidate RDMs reordered by each TR order, in full.

    The values are those :func:`permuted_candidates` gathers (see there for orders that repeat
    TRs), each column centered about its mean over the off-diagonal pairs, so that a plain
    cosine with a centered target gives the correlation.  The torch engine and the tests use
    these; the numpy engine gathers tile by tile instead of holding K x L columns.

    Parameters
    ----------
    columns, norms : numpy.ndarray
        (m, L) columns and (L,) norms from :func:`prepare_candidates`.
    orders : numpy.ndarray
        int (K, T): TR indices; the reordered RDM is ``rdm[order][:, order]``.

    Returns
    -------
    columns : numpy.ndarray
        float64 (m, K * L): the L columns of order 0, then those of order 1, and so on;
        zero at the diagonal positions.
    norms : numpy.ndarray
        float64 (K * L,).
    """
    n_orders, n_trs = orders.shape
    n_layers = columns.shape[1]
    layout = pair_layout(n_trs)
    pairs = layout.off_diagonal
    full = _full_matrices(columns, norms, n_trs, np.float64)
    out_norms = _reordered_norms(full, norms, orders)
    full = full.reshape(n_layers, -1)
    out = np.zeros((columns.shape[0], n_orders * n_layers), dtype=np.float64)
    for k, order in enumerate(np.asarray(orders, dtype=np.intp)):
        flat = order[layout.rows[pairs]] * n_trs + order[layout.cols[pairs]]
        block = full[:, flat].T
        block -= block.mean(axis=0)
        out[pairs, k * n_layers:(k + 1) * n_layers] = block
    return out, out_norms


def _reordered_norms(full: np.ndarray, norms: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Return the (K * L,) norms, about their means, of the columns reordered by `orders`.

    ``full`` holds the (L, T, T) matrices of :func:`_full_matrices`.  Orders that permute the
    TRs keep each layer's norm; for the others the sums come from how often each TR is taken.
    """
    n_layers, n_trs, _ = full.shape
    out_norms = np.tile(norms, len(orders))
    counts = np.stack([np.bincount(order, minlength=n_trs) for order in orders]).T
    repeats = np.flatnonzero((counts != 1).any(axis=0))
    if not len(repeats):
        return out_norms
    n_pairs = n_trs * (n_trs - 1) // 2
    mult = counts[:, repeats].astype(np.float64)
    for layer in range(n_layers):
        if not norms[layer] > 0:
            continue
        values = full[layer].astype(np.float64)  # (T, T)
        diagonal = np.diag(values).copy()
        # Sums over the reordered pairs i < j of a value and of its square, from how often
        # each TR is taken: (m' V m - sum_a m_a V_aa) / 2 over the full symmetric matrix.
        total = (np.einsum("ak,ak->k", mult, values @ mult) - diagonal @ mult) / 2
        values *= values
        squares = (np.einsum("ak,ak->k", mult, values @ mult) - diagonal**2 @ mult) / 2
        spread = np.maximum(squares - total**2 / n_pairs, 0.0)
        out_norms[repeats * n_layers + layer] = np.sqrt(spread)
    return out_norms


def _gather_widths(n_layers: int) -> list[int]:
    """Split L layers into groups of 8, 4, 2 and 1 (rows of 32, 16, 8 and 4 bytes)."""
    widths = []
    for width in (8, 4, 2, 1):
        while n_layers - sum(widths) >= width:
            widths.append(width)
    return widths


def _full_matrices(columns: np.ndarray, norms: np.ndarray, n_trs: int,
                   dtype: type) -> np.ndarray:
    """Return (L, T, T) symmetric matrices of the columns, diagonal = each layer's minimum."""
    layout = pair_layout(n_trs)
    pairs = layout.off_diagonal
    full = np.zeros((columns.shape[1], n_trs, n_trs), dtype=dtype)
    for layer, matrix in enumerate(full):
        matrix[layout.rows, layout.cols] = columns[:, layer]
        matrix.T[layout.rows, layout.cols] = columns[:, layer]
        if norms[layer] > 0:  # NaN or constant layers keep zeros: their maps are NaN anyway
            np.fill_diagonal(matrix, columns[pairs, layer].min())
    return full


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
