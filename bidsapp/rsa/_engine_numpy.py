"""The searchlight engine on CPU with numpy: one fused pass per center, threads across centers.

Per center (n voxels, T TRs, m = T (T - 1) / 2 pairs of TRs):

1. gather the sphere's order keys (voxel-major rows, contiguous) and pack each with its column
   number into one uint64, so that one vectorized ``sort`` of each TR's row gives both the order
   and, from equal neighbours, the ties;
2. scatter half the doubled centered ranks (integers / 2, exact in float32) back to voxel order,
   with average ranks for the TRs that have tied voxels;
3. Gram matrix ``G = R @ R.T`` with LAPACK ``ssfrk``: the upper triangle only, written packed
   (RFP, see :class:`._ranks.PairLayout`) so that no gather is needed.  Its entries are
   multiples of 1/4 whose partial sums stay below n (n - 1)**2 / 4 < 2**22 for n <= 255
   voxels: float32 holds them exactly (``dsfrk`` in float64 for larger spheres);
4. without voxel ties every TR's rank vector is a permutation of the same values, so the target
   RDM is ``1 - G / G_tt`` with one constant ``G_tt``, and ``max(G) - G`` are nonnegative
   integers in dissimilarity order: a counting sort (``bincount`` + running sum) gives exact
   average ranks.  Spheres with tied voxels take the general, sorting path;
5. the ranks of a few centers are stacked and multiplied by the pre-ranked candidate columns in
   one float64 product, exact because all operands are integers below 2**18.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from scipy.linalg.lapack import dsfrk, ssfrk
from threadpoolctl import threadpool_limits

from ._ranks import (
    PairLayout,
    PermutedCandidates,
    doubled_centered_from_sorted,
    doubled_centered_ranks,
    pair_layout,
)

# Centers whose target ranks are stacked for one product with the candidate columns: enough to
# read the (pairs x L) candidate columns once per several centers, few enough to stay in cache.
# A permutation null's K x L columns (~1 GB at T = 496) are streamed from memory: a taller
# stack makes that product compute-bound (2.5x faster per center at 1,000 columns).
_STACK = 8
_STACK_MANY = 64
_MANY_COLUMNS = 64
# Pairs of TRs per tile of a permutation null's product: the tile's gathered candidates, K x L
# float32 per pair (~65 MB at K = 101, L = 10), stay in the last-level cache's reach.
TILE_PAIRS = 16384
# Largest counting-sort table (entries): ~n**3 / 6 for n voxels, 128 MB at this bound (n ~ 460).
_MAX_TABLE = 2**24


def run_numpy(keys: np.ndarray, neighbors: np.ndarray, columns: np.ndarray, norms: np.ndarray,
              method: str, chunk_size: int, n_jobs: int, out: np.ndarray,
              progress: Callable[[int], None] | None = None) -> None:
    """Fill ``out`` (n_centers, L) with the map values of equally sized spheres.

    Parameters
    ----------
    keys : numpy.ndarray
        uint32 (V, T) order keys of the patterns (see :func:`._ranks.order_keys`).
    neighbors : numpy.ndarray
        intp (n_centers, n): every row a full sphere (no padding).
    columns, norms : numpy.ndarray
        Candidate columns and their norms from :func:`._ranks.prepare_candidates`.
    method : {'spearman', 'pearson'}
        How the target RDM is compared with the candidates.
    chunk_size : int
        Centers per task handed to a thread.
    n_jobs : int
        Threads.
    out : numpy.ndarray
        float32 (n_centers, L), written in place.
    progress : callable, optional
        Called, from the worker threads, with the number of centers of each finished task.
    """
    starts = range(0, len(neighbors), chunk_size)

    def task(start: int) -> None:
        stop = min(start + chunk_size, len(neighbors))
        _run_chunk(keys, neighbors[start:stop], columns, norms, method, out[start:stop])
        if progress is not None:
            progress(stop - start)

    # Small products are ~10x slower with two BLAS threads each: one per worker, workers per core.
    with threadpool_limits(limits=1, user_api="blas"):
        if n_jobs == 1 or len(starts) == 1:
            for start in starts:
                task(start)
        else:
            with ThreadPoolExecutor(max_workers=n_jobs) as pool:
                list(pool.map(task, starts))


class _Work:
    """Per-task buffers for spheres of n voxels over T TRs, reused from center to center."""

    def __init__(self, n_trs: int, n_voxels: int, stack: int = _STACK) -> None:
        self.n_trs, self.n_voxels = n_trs, n_voxels
        self.layout = pair_layout(n_trs)
        self.n_pairs = n_trs * (n_trs - 1) // 2
        self.shift = np.uint64(max(1, (n_voxels - 1).bit_length()))
        self.low = np.uint64((1 << int(self.shift)) - 1)
        self.column_ids = np.arange(n_voxels, dtype=np.uint64)
        self.row_offset = (np.arange(n_trs) * n_voxels)[:, None]
        # Half the doubled centered ranks of a tie-free row, repeated for every TR.
        # float32 sums the quarter-integer products exactly below 2**22.
        single = n_voxels * (n_voxels - 1) ** 2 / 4 < 2**22
        dtype = np.float32 if single else np.float64
        self.sfrk = ssfrk if single else dsfrk
        half = (np.arange(n_voxels) + (1 - n_voxels) / 2).astype(dtype)
        self.half_ranks = np.ascontiguousarray(np.broadcast_to(half, (n_trs, n_voxels)))
        self.gram_diag = n_voxels * (n_voxels**2 - 1) / 12  # sum of squared centered ranks
        self.ranks = np.empty(n_trs * n_voxels, dtype=dtype)
        self.scatter = np.empty((n_trs, n_voxels), dtype=np.intp)
        self.gram = np.zeros(len(self.layout.rows), dtype=dtype)
        self.bins = np.empty(len(self.layout.rows), dtype=np.intp)
        # Rank table of the counting sort: one entry per possible value of max(G) - G_ij.
        table_size = 2 * int(self.gram_diag) + 2
        self.counting = table_size <= _MAX_TABLE
        self.table = np.empty(table_size if self.counting else 0, dtype=np.float64)
        self.stack = np.empty((stack, len(self.layout.rows)), dtype=np.float64)
        self.stack_sq = np.empty(stack, dtype=np.float64)
        self.stack_bad = np.zeros(stack, dtype=bool)


def _run_chunk(keys: np.ndarray, neighbors: np.ndarray, columns: np.ndarray, norms: np.ndarray,
               method: str, out: np.ndarray) -> None:
    """Compute the map values of a chunk of centers into ``out``."""
    n_trs = keys.shape[1]
    stack = _STACK_MANY if columns.shape[1] >= _MANY_COLUMNS else _STACK
    work = _Work(n_trs, neighbors.shape[1], min(stack, len(neighbors)))
    filled = 0
    for center, sphere in enumerate(neighbors):
        work.stack_bad[filled], work.stack_sq[filled] = _target_row(
            keys, sphere, work, work.stack[filled], method)
        filled += 1
        if filled == len(work.stack) or center == len(neighbors) - 1:
            first = center + 1 - filled
            _flush(work, filled, columns, norms, out[first : center + 1])
            filled = 0


def _target_row(keys: np.ndarray, sphere: np.ndarray, work: _Work, row: np.ndarray,
                method: str) -> tuple[bool, float]:
    """Write a sphere's centered target ranks (zero on the diagonal) into ``row``.

    Returns whether the target is undefined (its row is then zeros) and the row's sum of
    squares.
    """
    n_trs = work.n_trs
    tied = _voxel_ranks(keys, sphere, work)
    # The (n x T) Fortran view of the C-ordered (T x n) ranks: trans='T' gives R @ R.T.
    work.sfrk(n_trs, work.n_voxels, 1.0, work.ranks.reshape(n_trs, work.n_voxels).T, 0.0,
              work.gram, trans="T", overwrite_c=1)
    if method == "spearman" and not tied and work.counting:
        _counting_ranks(work, row)
        bad = False
    else:
        bad = _general_target(work, row, method)
        if bad:
            row[...] = 0.0
    row[work.layout.diagonal] = 0.0
    return bad, float(row @ row)


def _voxel_ranks(keys: np.ndarray, sphere: np.ndarray, work: _Work) -> bool:
    """Write the sphere's half ranks (T x n, voxel order) to ``work.ranks``; return any tie."""
    # keys[sphere] is (n, T): one row per TR instead, each key packed with its column number in
    # the low bits, so that sorting the packed keys sorts values and carries the permutation.
    packed = keys[sphere].T.astype(np.uint64, order="C")
    packed <<= work.shift
    packed |= work.column_ids
    packed.sort(axis=1)
    np.bitwise_and(packed, work.low, out=work.scatter, casting="unsafe")
    work.scatter += work.row_offset
    # Sorted neighbours with equal values differ only in the column bits.
    tied = bool(np.bitwise_xor(packed[:, 1:], packed[:, :-1]).min() <= work.low)
    if not tied:
        work.ranks[work.scatter] = work.half_ranks
        return False
    work.ranks[work.scatter] = doubled_centered_from_sorted(packed >> work.shift) / 2
    return True


def _counting_ranks(work: _Work, row: np.ndarray) -> None:
    """Exact doubled centered dissimilarity ranks of a tie-free sphere, by counting sort.

    Off the diagonal, every entry of ``work.gram`` is ``G_tt - (sum of squared rank
    differences) / 2`` with that sum even, so ``max - entry`` is a nonnegative integer, in
    dissimilarity order.  The diagonal entries (``G_tt``) are set to the maximum, counted in
    bin 0, and taken out of the count.
    """
    gram, bins, diagonal = work.gram, work.bins, work.layout.diagonal
    gram[diagonal] = -work.gram_diag
    top = gram.max()
    gram[diagonal] = top
    np.subtract(top, gram, out=bins, casting="unsafe")
    counts = np.bincount(bins)
    counts[0] -= len(diagonal)
    # Doubled centered average rank of bin b: 2 * (count below b) + count(b) - m, i.e. the
    # running sum of count(b) + count(b - 1), started at -m.  Written into a buffer kept from
    # center to center: fresh ~1 MB arrays cost page faults.
    table = work.table[: len(counts)]
    table[0] = counts[0] - work.n_pairs
    np.add(counts[1:], counts[:-1], out=table[1:])
    # torch's scan is ~4x faster than numpy's here; in place, on the same memory, and serial
    # for a 1-D tensor, so no intra-op threads join in.
    torch.from_numpy(table).cumsum_(0)
    np.take(table, bins, out=row, mode="clip")


def _general_target(work: _Work, row: np.ndarray, method: str) -> bool:
    """Fill ``row`` for spheres with tied voxels (or for Pearson); return True if undefined."""
    layout = work.layout
    diag = work.gram[layout.diagonal].astype(np.float64)
    if not diag.all():
        return True  # a TR whose voxels are all equal: Spearman, hence the RDM, is undefined
    pairs = layout.off_diagonal
    gram = work.gram[pairs]
    if diag.min() == diag.max():
        similarity = gram.astype(np.float64)  # a positive multiple of the correlations
    else:
        # Same (G_ij, G_ii * G_jj) give bit-identical quotients, so exact ties stay ties.
        similarity = gram / np.sqrt(diag[layout.rows[pairs]] * diag[layout.cols[pairs]])
    target = np.empty(len(pairs))
    if method == "spearman":
        doubled_centered_ranks(-similarity, target)
    else:
        np.subtract(similarity.mean(), similarity, out=target)
    row[pairs] = target
    return False


def _flush(work: _Work, filled: int, columns: np.ndarray, norms: np.ndarray,
           out: np.ndarray) -> None:
    """Correlate ``filled`` stacked target rows with the candidate columns into ``out``."""
    products = work.stack[:filled] @ columns
    with np.errstate(divide="ignore", invalid="ignore"):
        values = products / np.sqrt(work.stack_sq[:filled])[:, None] / norms
    values[work.stack_bad[:filled]] = np.nan
    out[...] = values


def run_numpy_orders(keys: np.ndarray, neighbors: np.ndarray, cands: PermutedCandidates,
                     method: str, stack_rows: int, n_jobs: int, out: np.ndarray,
                     progress: Callable[[int], None] | None = None) -> None:
    """Fill ``out`` (n_centers, K * L) with the map values of a permutation null.

    The target ranks of ``stack_rows`` centers are built by ``n_jobs`` threads into one
    float32 stack (exact integers for T up to 4,096), then multiplied by the K x L reordered
    candidates tile by tile: each tile of pairs is gathered once per stack from
    ``cands.blocks`` by the orders, and the product runs on ``n_jobs`` BLAS threads.  Each
    target RDM is thus built and ranked once, whatever K; the candidates are never held as
    K x L columns.  Orders that are the identity (the observed maps) are multiplied in
    float64 with the exact columns, as :func:`run_numpy` does; the others in float32, with
    float64 sums over tiles (relative error ~1e-6, see ``docs/searchlight.md``).

    Parameters
    ----------
    keys : numpy.ndarray
        uint32 (V, T) order keys of the patterns.
    neighbors : numpy.ndarray
        intp (n_centers, n): every row a full sphere (no padding).
    cands : PermutedCandidates
        From :func:`._ranks.permuted_candidates`.
    method : {'spearman', 'pearson'}
        How the target RDM is compared with the candidates.
    stack_rows : int
        Centers whose target ranks are held at once (4 T (T + 1) / 2 bytes each).
    n_jobs : int
        Threads.
    out : numpy.ndarray
        float32 (n_centers, K * L), written in place.
    progress : callable, optional
        Called with the number of centers of each stack once it is done.
    """
    n_trs = keys.shape[1]
    layout = pair_layout(n_trs)
    n_rfp = len(layout.rows)
    # Stacks of equal size: a small last stack would cost a whole gather for a few centers.
    n_stacks = -(-len(neighbors) // max(1, stack_rows))
    stack_rows = -(-len(neighbors) // n_stacks)
    stack = np.empty((stack_rows, n_rfp), dtype=np.float32)
    squares = np.empty(stack_rows)
    bad = np.zeros(stack_rows, dtype=bool)
    works = [_Work(n_trs, neighbors.shape[1], 1) for _ in range(n_jobs)]
    # Each thread multiplies the whole stack by the columns of its own share of the orders,
    # with single-threaded BLAS: no thread waits on another within a stack, and each gathers
    # only the columns it multiplies.
    shares = [_OrderShare(cands, part, min(TILE_PAIRS, n_rfp))
              for part in np.array_split(np.arange(len(cands.orders)), n_jobs) if len(part)]

    def fill(first: int, stop: int, work: _Work, offset: int) -> None:
        row64 = work.stack[0]
        for center in range(first, stop):
            slot = center - offset
            bad[slot], squares[slot] = _target_row(keys, neighbors[center], work, row64,
                                                   method)
            stack[slot] = row64

    with ThreadPoolExecutor(max_workers=n_jobs) as pool, \
            threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, len(neighbors), stack_rows):
            stop = min(start + stack_rows, len(neighbors))
            filled = stop - start
            bounds = np.linspace(start, stop, n_jobs + 1).astype(int)
            list(pool.map(fill, bounds[:-1], bounds[1:], works, [start] * n_jobs))
            stacked = [stack[:filled]] * len(shares)
            values = np.concatenate(list(pool.map(
                _OrderShare.correlate, shares, stacked, [layout] * len(shares))), axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                values /= np.sqrt(squares[:filled])[:, None]
                values /= cands.norms
            values[bad[:filled]] = np.nan
            out[start:stop] = values
            if progress is not None:
                progress(filled)


class _OrderShare:
    """One thread's share of a null's orders: its buffers and its part of the product."""

    def __init__(self, cands: PermutedCandidates, orders: np.ndarray, tile: int) -> None:
        self.cands, self.tile = cands, tile
        self.n_trs = cands.orders.shape[1]
        self.n_layers = len(cands.column_norms)
        own = cands.orders[orders]
        self.identity = np.flatnonzero((own == np.arange(self.n_trs)).all(axis=1))
        # T x T < 2**31 for T < 46,341: int32 rows halve the index's memory traffic.
        self.by_tr = np.ascontiguousarray(own.T, dtype=np.int32)  # (T, k): order[:, t]
        self.index = np.empty((tile, len(orders)), dtype=np.int32)
        self.gathered = [np.empty((tile, len(orders), block.shape[1]), dtype=np.float32)
                         for block in cands.blocks]
        # The gather takes whole rows of a block as single items of 4 to 32 bytes.
        self.items = [block.view(np.dtype((np.void, block.shape[1] * 4))).reshape(-1)
                      for block in cands.blocks]
        self.targets = [g.view(np.dtype((np.void, g.shape[2] * 4))).reshape(tile, -1)
                        for g in self.gathered]
        self.widths = np.cumsum([0] + [block.shape[1] for block in cands.blocks])

    def correlate(self, stack: np.ndarray, layout: PairLayout) -> np.ndarray:
        """Return the (B, k * L) float64 products of the stacked targets with the share."""
        n_rfp = stack.shape[1]
        n_orders = self.index.shape[1]
        sums = np.zeros((len(stack), n_orders, self.n_layers))
        exact = np.zeros((len(stack), self.n_layers))
        index = self.index
        for first in range(0, n_rfp, self.tile):
            last = min(first + self.tile, n_rfp)
            width = last - first
            # Row order[j] * T + order[i] of the symmetric matrix: consecutive pairs of a tile
            # share j and have consecutive i, so they gather consecutive rows.
            np.take(self.by_tr, layout.cols[first:last], axis=0, out=index[:width])
            index[:width] *= self.n_trs
            index[:width] += self.by_tr[layout.rows[first:last]]
            part = stack[:, first:last]
            for b, (item, target) in enumerate(zip(self.items, self.targets, strict=True)):
                np.take(item, index[:width], out=target[:width], mode="clip")
                product = part @ self.gathered[b][:width].reshape(width, -1)
                sums[:, :, self.widths[b]:self.widths[b + 1]] += product.reshape(
                    len(stack), n_orders, -1)
            if len(self.identity):
                exact += part.astype(np.float64) @ self.cands.columns[first:last]
        sums[:, self.identity] = exact[:, None]
        return sums.reshape(len(stack), -1)
